"""``python -m benchmarks``: run the scenarios against the sandbox and write RESULTS.md (see the package
docstring). Exit status 0 even when targets are missed; 1 when a scenario could not run."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks import results
from benchmarks.procs import PROFILE_DIR, REPO, ScenarioFailed, progress
from benchmarks.scenarios import SCENARIOS, Context, Section


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shops: checks the harness works (CI)")
    parser.add_argument(
        "--only", default="", help="comma-separated scenario numbers, e.g. 1,3 (default: all)"
    )
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 3; 1 with --quick)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md", help="the markdown file"
    )
    parser.add_argument(
        "--mongo-uri", help="a MongoDB server (mongodb://host:port, no database) instead of starting FerretDB"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run every crawl under pyinstrument, writing DIR/<crawl>.html (figures include its overhead)",
    )
    args = parser.parse_args(argv)
    modules = SCENARIOS()
    known = {m.NUMBER for m in modules}
    try:
        args.numbers = sorted({int(x) for x in args.only.split(",") if x.strip()}) or sorted(known)
    except ValueError:
        parser.error(f"--only takes scenario numbers, got {args.only!r}")
    if not set(args.numbers) <= known:
        parser.error(f"unknown scenarios {sorted(set(args.numbers) - known)}; there are {sorted(known)}")
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR.append(args.profile.resolve())
    started = time.perf_counter()
    load_start = os.getloadavg()
    commit = results.commit()
    sections: list[Section] = []
    failures: dict[int, str] = {}
    progress(f"benchmarks: scenarios {args.numbers}, {args.reps} rep(s){', quick' if args.quick else ''}")
    with tempfile.TemporaryDirectory(prefix="shopcrawl-bench-") as tmp:
        ctx = Context(quick=args.quick, reps=args.reps, workdir=Path(tmp), mongo_uri=args.mongo_uri)
        for module in SCENARIOS():
            if module.NUMBER not in args.numbers:
                continue
            begun = time.perf_counter()
            progress(f"[{module.NUMBER}] {module.TITLE}")
            try:
                sections.append(module.run(ctx))
            except ScenarioFailed as error:
                failures[module.NUMBER] = str(error)
            except Exception:  # a bug in a scenario: report it, run the others
                failures[module.NUMBER] = traceback.format_exc()
            if module.NUMBER in failures:
                progress(f"[{module.NUMBER}] could not run: {failures[module.NUMBER].strip()[-2000:]}")
            else:
                took = time.perf_counter() - begun
                progress(f"[{module.NUMBER}] done in {took:.1f} s: {sections[-1].target.text}")
        meta = {
            "date": results.now_utc(),
            "commit": commit,
            "machine": results.machine(load_start, os.getloadavg()),
            "versions": results.versions(ctx.facts),
            "command": "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "duration_s": time.perf_counter() - started,
            "reps": args.reps,
            "quick": args.quick,
            "profiled": bool(args.profile),
        }
    results.write(args.out, sections, failures, meta)
    progress(f"wrote {args.out} and {args.out.parent / 'results.json'} in {meta['duration_s']:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

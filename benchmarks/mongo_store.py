"""Items/s into MongoDB against the same crawl with a null store, and database round trips.

Starts a sandbox shop and (unless --mongo-uri is given) the FerretDB test server built by
scripts/ferretdb.sh, then crawls the same shop into `null://` (the baseline: the crawl without a
database) and into MongoDB, first into an empty database and (unless --first-only) once more into
the same one, the shop unchanged. Round trips are the store's write commands per 1,000 items.
--shape picks the MongoStore write shape (default auto: diff on FerretDB, upsert on MongoDB).

Usage: .venv/bin/python benchmarks/mongo_store.py [--items 20000] [--shape auto|upsert|diff]
       [--first-only] [--mongo-uri mongodb://...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shopcrawl.sandbox.local import crawl_command, crawl_env

REPO = Path(__file__).resolve().parent.parent


def _first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def crawl(url: str, store: str, workdir: Path, name: str) -> dict[str, object]:
    log = workdir / f"{name}.log"
    args = crawl_command("demo", {"LOG_FILE": log, "LOG_LEVEL": "INFO"})
    started = time.perf_counter()
    proc = subprocess.run(
        args, env=crawl_env(url, store), cwd=workdir, capture_output=True, text=True, timeout=3600
    )
    elapsed = time.perf_counter() - started
    text = log.read_text()
    stats = {key: int(value) for key, value in re.findall(r"'(shopcrawl/store/[a-z_]+)': (\d+)", text)}
    items = stats.get("shopcrawl/store/items", 0)
    trips = stats.get("shopcrawl/store/round_trips")
    shape = re.search(r"items are written in the '(\w+)' shape", text)
    return {
        "store": name,
        "shape": shape.group(1) if shape else None,
        "exit": proc.returncode,
        "items": items,
        "seconds": round(elapsed, 2),
        "items_per_s": round(items / elapsed, 1),
        "round_trips": trips,
        "round_trips_per_1000_items": None if trips is None or not items else round(trips * 1000 / items, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--mongo-uri", help="an existing server (default: start FerretDB)")
    parser.add_argument("--shape", choices=("auto", "upsert", "diff"), default="auto")
    parser.add_argument("--first-only", action="store_true", help="skip the second, identical crawl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "shopcrawl.sandbox", "--items", str(args.items)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        ferret = None
        try:
            url = _first_line(sandbox)
            uri = args.mongo_uri
            if uri is None:
                binary = subprocess.run(
                    ["bash", str(REPO / "scripts" / "ferretdb.sh")],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                ferret = subprocess.Popen(
                    [
                        binary,
                        "--listen-addr=127.0.0.1:0",
                        f"--sqlite-url=file:{workdir}/",
                        "--log-level=error",
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                uri = _first_line(ferret).rstrip("/")
            store = f"{uri.rstrip('/')}/bench?shopcrawlWriteShape={args.shape}"
            runs = [crawl(url, "null://", workdir, "null"), crawl(url, store, workdir, "mongodb first")]
            if not args.first_only:
                runs.append(crawl(url, store, workdir, "mongodb again"))
        finally:
            for process in (sandbox, ferret):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)
    for run in runs:
        print(json.dumps(run))
    null = runs[0]
    assert isinstance(null["items_per_s"], float)
    print(f"{args.items:,} items, write shape {args.shape} (same sandbox shop each crawl):")
    print(f"  null store: {null['items_per_s']:,} items/s")
    for mongo in runs[1:]:
        assert isinstance(mongo["items_per_s"], float)
        share = mongo["items_per_s"] / null["items_per_s"]
        print(f"  {mongo['store']} ({mongo['shape']} shape): {mongo['items_per_s']:,} items/s", end=" ")
        print(f"({share:.0%} of the null store's), {mongo['round_trips_per_1000_items']} round trips", end="")
        print(" per 1,000 items")
    return 0 if all(run["exit"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

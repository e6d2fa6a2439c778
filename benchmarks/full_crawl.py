"""Full crawl of a sandbox shop past the paging cap: API calls and items/s.

Runs the same sandbox shop twice in one go:
- shopcrawl as shipped (200 items a listing page, 20 num_iids a detail call, windows past the cap);
- the naive client of the seed article, emulated with the same crawler set to 100 items a listing
  page and one num_iid a detail call (the article fetches details one item at a time).

Usage: .venv/bin/python benchmarks/full_crawl.py [--items 25000] [--cap 20000] [--skip-naive]
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from shopcrawl.sandbox.local import crawl_command, crawl_env


def _control(base: str, path: str, body: object = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data), timeout=60) as reply:
        result: dict[str, object] = json.loads(reply.read())
        return result


def crawl(url: str, workdir: Path, name: str, settings: dict[str, object]) -> dict[str, object]:
    base = url.removesuffix("/router/rest")
    _control(base, "/_sandbox/reset-stats", {})
    db = workdir / f"{name}.db"
    env = crawl_env(url, f"sqlite:///{db}")
    args = crawl_command("demo", {"LOG_LEVEL": "WARNING", **settings})
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=workdir, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    stats = _control(base, "/_sandbox/stats")
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT COUNT(DISTINCT num_iid) FROM items").fetchone()[0]
        coverage = conn.execute("SELECT coverage FROM runs").fetchone()[0]
    calls = stats["calls"]
    assert isinstance(calls, dict)
    return {
        "name": name,
        "exit": proc.returncode,
        "calls": sum(calls.values()),
        "calls_by_method": calls,
        "stored": stored,
        "coverage": coverage,
        "seconds": round(elapsed, 2),
        "items_per_s": round(stored / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=25000)
    parser.add_argument("--cap", type=int, default=20000)
    parser.add_argument("--skip-naive", action="store_true", help="only run shopcrawl as shipped")
    args = parser.parse_args()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "shopcrawl.sandbox", "--items", str(args.items), "--page-cap", str(args.cap)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        url = sandbox.stdout.readline().strip()
        floor = math.ceil(args.items / 200) + math.ceil(args.items / 20)
        with tempfile.TemporaryDirectory() as tmp:
            runs = [crawl(url, Path(tmp), "shopcrawl", {})]
            if not args.skip_naive:
                naive = {"SHOPCRAWL_PAGE_SIZE": 100, "SHOPCRAWL_DETAIL_BATCH": 1}
                runs.append(crawl(url, Path(tmp), "naive", naive))
        ours = runs[0]
        print(f"shop: {args.items:,} items, paging cap {args.cap:,}")
        print(f"floor ceil(N/200)+ceil(N/20) = {floor:,} calls")
        for run in runs:
            print(json.dumps(run))
        assert isinstance(ours["calls"], int)
        print(f"shopcrawl: {ours['calls']:,} calls = {ours['calls'] / floor:.4f} x the floor")
        if len(runs) > 1:
            naive_calls = runs[1]["calls"]
            assert isinstance(naive_calls, int)
            print(
                f"naive client (same sandbox shop, same run): {naive_calls:,} calls; "
                f"shopcrawl makes {naive_calls / ours['calls']:.1f}x fewer"
            )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

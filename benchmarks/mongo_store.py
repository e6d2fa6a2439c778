"""Items/s into MongoDB against the same crawl with a null store, and database round trips.

Starts a sandbox shop and (unless --mongo-uri is given) the FerretDB test server built by
scripts/ferretdb.sh, then crawls the same shop twice: into `null://` (the baseline: the crawl
without a database) and into MongoDB. Round trips are the store's write commands per 1,000 items.

Usage: .venv/bin/python benchmarks/mongo_store.py [--items 20000] [--mongo-uri mongodb://...]
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
    return {
        "store": name,
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
            runs = [
                crawl(url, "null://", workdir, "null"),
                crawl(url, f"{uri.rstrip('/')}/bench", workdir, "mongodb"),
            ]
        finally:
            for process in (sandbox, ferret):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)
    for run in runs:
        print(json.dumps(run))
    null, mongo = runs
    assert isinstance(null["items_per_s"], float) and isinstance(mongo["items_per_s"], float)
    share = mongo["items_per_s"] / null["items_per_s"]
    print(f"{args.items:,} items: MongoDB {mongo['items_per_s']:,} items/s,", end=" ")
    print(f"null store {null['items_per_s']:,} items/s")
    print(f"(same crawl, same sandbox shop): MongoDB runs at {share:.0%} of the null store's speed")
    print(f"{mongo['round_trips_per_1000_items']} database round trips per 1,000 items")
    return 0


if __name__ == "__main__":
    sys.exit(main())

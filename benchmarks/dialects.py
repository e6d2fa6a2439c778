"""One sandbox shop crawled through each API dialect: calls, the dialect's floor, and items/s.

The sandbox serves every dialect over the same synthetic shop, so the runs differ only in the API:
- ``top``: your own Taobao shop; floor ``ceil(N/200) + ceil(N/20)`` (listing pages + 20-item batches);
- ``1688``: your own 1688 shop (AOP); floor ``ceil(N/20) + N`` (20-item pages + one product a call);
- ``gateway`` on ``taobao`` and on ``1688``: any shop; floor ``ceil(N/page size) + N`` (the gateway's
  pages + one ``item_get`` an item). Past the gateway's depth cap the listing needs a union of queries,
  so its listing calls are also shown against ``ceil(N/page size)``.

Usage: .venv/bin/python benchmarks/dialects.py [--items 3000] [--only top,1688,gateway-taobao,gateway-1688]
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

LISTING_APIS = ("items.onsale.get", "product.list.get", "item_search_shop")
GATEWAY_PAGE_SIZE = 40  # the sandbox gateway's default page size
RUNS = {
    # name: (SHOPCRAWL_API, SHOPCRAWL_PLATFORM, URL suffix after the sandbox's root, listing page size)
    "top": ("top", "taobao", "/router/rest", 200),
    "1688": ("1688", "1688", "/openapi", 20),
    "gateway-taobao": ("gateway", "taobao", "", GATEWAY_PAGE_SIZE),
    "gateway-1688": ("gateway", "1688", "", GATEWAY_PAGE_SIZE),
}


def _control(root: str, path: str, body: object = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(root + path, data=data), timeout=60) as reply:
        result: dict[str, object] = json.loads(reply.read())
        return result


def floor_of(name: str, items: int, page_size: int) -> int:
    if name == "top":
        return math.ceil(items / 200) + math.ceil(items / 20)
    return math.ceil(items / page_size) + items


def crawl(root: str, workdir: Path, name: str, items: int) -> dict[str, object]:
    api, platform, suffix, page_size = RUNS[name]
    _control(root, "/_sandbox/reset-stats", {})
    db = workdir / f"{name}.db"
    env = crawl_env(root + suffix, f"sqlite:///{db}", {"SHOPCRAWL_API": api, "SHOPCRAWL_PLATFORM": platform})
    args = crawl_command("demo", {"LOG_LEVEL": "WARNING"})
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=workdir, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    calls = _control(root, "/_sandbox/stats")["calls"]
    assert isinstance(calls, dict)
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT COUNT(DISTINCT num_iid) FROM items").fetchone()[0]
        coverage = conn.execute("SELECT coverage FROM runs").fetchone()[0]
    total = sum(calls.values())
    floor = floor_of(name, items, page_size)
    listing = sum(n for method, n in calls.items() if any(k in method for k in LISTING_APIS))
    return {
        "name": name,
        "exit": proc.returncode,
        "stored": stored,
        "coverage": coverage,
        "calls": total,
        "calls_by_method": calls,
        "floor": floor,
        "ratio_to_floor": round(total / floor, 4),
        "listing_calls": listing,
        "listing_pages_floor": math.ceil(items / page_size),
        "seconds": round(elapsed, 2),
        "items_per_s": round(stored / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--only", default=",".join(RUNS), help="comma-separated runs: " + ", ".join(RUNS))
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "shopcrawl.sandbox", "--items", str(args.items), "--seed", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        root = sandbox.stdout.readline().strip().removesuffix("/router/rest")
        print(f"shop: {args.items:,} items, one sandbox for every dialect")
        with tempfile.TemporaryDirectory() as tmp:
            for name in names:
                run = crawl(root, Path(tmp), name, args.items)
                print(json.dumps(run, ensure_ascii=False))
                print(
                    f"{name}: {run['calls']:,} calls = {run['ratio_to_floor']} x its floor {run['floor']:,}; "
                    f"listing {run['listing_calls']:,} calls / {run['listing_pages_floor']:,} pages; "
                    f"{run['items_per_s']} items/s; coverage {run['coverage']}; exit {run['exit']}"
                )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time `shopcrawl report changes --json`, `report trends --json` and `report html` on a store of
at least 100,000 observations. Baseline: the issue's target, under 2 s each.

The store is written directly through the store API (the same write path a crawl uses): a shop of
--items items (a third with 2-4 SKUs), --runs complete runs a day apart, prices, stock and sales
moved between runs by a seeded random walk, a few items delisted and new each run. Each report runs
as the `shopcrawl` command in a subprocess (interpreter start-up included: what a user waits for).

Usage: .venv/bin/python benchmarks/reports.py [--items 10000] [--runs 10] [--store sqlite:///path]
"""

from __future__ import annotations

import argparse
import functools
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shopcrawl.items import ShopItem, Sku
from shopcrawl.stores import open_store
from shopcrawl.stores.base import RunRecord

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 2.0
SELLER = "bench"
print = functools.partial(print, flush=True)  # progress shows when the output is piped


def _item(rng: random.Random, num_iid: int, sku_share: float) -> ShopItem:
    fen = rng.randrange(100, 500_000)
    skus = [
        Sku(
            num_iid * 10 + k,
            f"1:{k}:颜色:色{k}",
            f"{(fen + k * 100) / 100:.2f}",
            fen + k * 100,
            rng.randrange(50),
        )
        for k in range(rng.choice((2, 3, 4)) if rng.random() < sku_share else 0)
    ]
    price = min((s.price_fen for s in skus), default=fen)
    return ShopItem(
        "taobao", SELLER, num_iid, f"商品 {num_iid}", f"{price / 100:.2f}", price,
        sum(s.quantity for s in skus) if skus else rng.randrange(100), rng.randrange(1000),
        datetime(2026, 1, 1, tzinfo=UTC), skus=skus,
    )  # fmt: skip


def _move(rng: random.Random, item: ShopItem) -> ShopItem:
    def fen(old: int) -> int:
        return max(1, old + rng.choice((0, 0, 0, 0, 0, 0, 0, -old // 10, old // 10)))

    skus = [replace(s, price_fen=(f := fen(s.price_fen)), price=f"{f / 100:.2f}") for s in item.skus]
    price = min((s.price_fen for s in skus), default=fen(item.price_fen))
    sold = (item.sold_quantity or 0) + rng.randrange(5)
    return replace(item, skus=skus, price_fen=price, price=f"{price / 100:.2f}", sold_quantity=sold)


def build(uri: str, items: int, runs: int, sku_share: float, seed: int = 1) -> int:
    rng = random.Random(seed)
    shop = {n: _item(rng, n, sku_share) for n in range(1, items + 1)}
    next_id = items + 1
    store = open_store(uri)
    store.open()
    observations = 0
    start = datetime.now(UTC) - timedelta(days=runs)
    try:
        for k in range(runs):
            if k:
                shop = {n: _move(rng, item) for n, item in shop.items()}
                for n in rng.sample(sorted(shop), 5):
                    del shop[n]
                for _ in range(5):
                    shop[next_id] = _item(rng, next_id, sku_share)
                    next_id += 1
            run = RunRecord(f"{SELLER}-{k:03d}", "taobao", SELLER, start + timedelta(days=k))
            store.start_run(run)
            batch = [replace(item, run_id=run.run_id) for item in shop.values()]
            for i in range(0, len(batch), 1000):
                store.write_items(batch[i : i + 1000])
            observations += sum(max(1, len(item.skus)) for item in batch)
            listed = len(batch)
            store.finish_run(
                replace(run, status="complete", coverage=1.0, declared_total=listed, items_listed=listed,
                        items_stored=listed, finished_at=run.started_at + timedelta(minutes=5))
            )  # fmt: skip
    finally:
        store.close()
    return observations


def timed(*args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(REPO / ".venv/bin/shopcrawl"), "report", *args], capture_output=True, text=True, timeout=600
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"shopcrawl report {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--sku-share", type=float, default=0.05, help="share of items with 2-4 SKUs")
    parser.add_argument("--store", help="store URI (default: a new SQLite file in a temporary directory)")
    parser.add_argument("--ferretdb", action="store_true", help="a MongoDB store on FerretDB (started here)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shopcrawl-reports-") as tmp:
        ferret = _start_ferretdb(Path(tmp)) if options.ferretdb else None
        try:
            run_all(options, Path(tmp), ferret)
        finally:
            if ferret is not None:
                ferret[0].terminate()
                ferret[0].wait(timeout=30)


def _start_ferretdb(workdir: Path) -> tuple[subprocess.Popen[str], str]:
    binary = subprocess.run(
        ["bash", str(REPO / "scripts" / "ferretdb.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    process = subprocess.Popen(
        [binary, "--listen-addr=127.0.0.1:0", f"--sqlite-url=file:{workdir}/", "--log-level=error"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip().rstrip("/") + "/bench"


def run_all(options: argparse.Namespace, tmp: Path, ferret: tuple[subprocess.Popen[str], str] | None) -> None:
    uri = ferret[1] if ferret else options.store or f"sqlite:///{tmp / 'bench.db'}"
    began = time.perf_counter()
    observations = build(uri, options.items, options.runs, options.sku_share)
    kind = uri.split(":")[0]
    print(f"store {kind}: {observations:,} observations, {options.runs} complete runs", end="")
    print(f" of ~{options.items:,} items")
    print(f"  (written in {time.perf_counter() - began:.1f} s)")
    common = ("--seller", SELLER, "--store", uri)
    results = {
        "report changes --json": timed("changes", *common, "--json"),
        "report trends --json": timed("trends", *common, "--json"),
        "report html": timed("html", *common, "-o", str(tmp / "report.html")),
    }
    print(f"baseline: the issue's target, under {TARGET_S:.0f} s each (wall time, start-up included)")
    for name, seconds in results.items():
        verdict = "ok" if seconds < TARGET_S else "OVER"
        print(f"  {name:<24} {seconds:6.2f} s  {verdict}")


if __name__ == "__main__":
    main()

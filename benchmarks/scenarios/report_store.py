"""The report store builder of scenario 7 (moved here from benchmarks/reports.py): a store holding
``runs`` complete runs of one shop, written directly through the store API (the write path a crawl
uses). A shop of ``items`` items (a share ``sku_share`` with 2-4 SKUs), runs a day apart, prices, stock
and sales moved between runs by a seeded random walk, five items delisted and five new each run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shopcrawl.items import ShopItem, Sku
from shopcrawl.stores import open_store
from shopcrawl.stores.base import RunRecord

SELLER = "bench"


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


def build(
    uri: str,
    items: int,
    runs: int,
    sku_share: float,
    seed: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the store; returns the observations written. ``progress(runs done, observations)`` per run."""
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
            if progress is not None:
                progress(k + 1, observations)
    finally:
        store.close()
    return observations

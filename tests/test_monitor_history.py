"""Trends and the HTML page's price history on a real store (SQLite and MongoDB in both write shapes),
checked against a straightforward recomputation from every complete run's observations: new, gone and
relisted items, SKU and no-SKU items, an incomplete run, a shop without sales counts (1688), and a
store whose runs were finished before their totals were kept."""

from __future__ import annotations

import sqlite3
import statistics
from contextlib import closing
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from shopcrawl.items import ShopItem, Sku
from shopcrawl.monitor.html import make_report, sku_prices
from shopcrawl.monitor.trends import NO_SALES, load_history, trends
from shopcrawl.stores import SqliteStore
from shopcrawl.stores.base import RunRecord
from tests.test_store_sqlite import T0

CENT = Decimal("0.01")


def item(
    num_iid: int,
    run_id: str,
    prices: int | list[int],
    *,
    stock: int = 5,
    sold: int | None = None,
    platform: str = "taobao",
    seller: str = "s1",
) -> ShopItem:
    """An item whose SKUs have ``prices`` (fen; one int: an item without SKUs), ``stock`` each."""
    skus = [
        Sku(num_iid * 10 + k, f"1:{k}", f"{fen / 100:.2f}", fen, stock)
        for k, fen in enumerate(prices if isinstance(prices, list) else [])
    ]
    fen = prices if isinstance(prices, int) else min(prices)
    return ShopItem(
        platform, seller, num_iid, f"商品 {num_iid}", f"{fen / 100:.2f}", fen, stock * max(1, len(skus)),
        sold, T0, skus=skus, run_id=run_id,
    )  # fmt: skip


def write_run(store, run_id: str, day: float, items: list[ShopItem], status: str = "complete") -> None:
    platform, seller = items[0].platform, items[0].seller_id
    run = RunRecord(run_id, platform, seller, T0 + timedelta(days=day))
    store.start_run(run)
    store.write_items(items)
    run.status, run.finished_at = status, run.started_at + timedelta(minutes=5)
    store.finish_run(run)


def taobao_shop(store) -> None:
    """Five complete runs and an incomplete one. Item 1 has SKUs throughout; 2 is gone from r1 and
    relisted in r3; 3 moves price; 4 has SKUs and is gone from r4; 5 is new in r1 and gone in r3; 6 is
    new in r3 without a sales count; 7 is new in r4; 8 was only seen by the incomplete run."""
    write_run(store, "r0", 0, [
        item(1, "r0", [1000, 1200], sold=10), item(2, "r0", 500, sold=3),
        item(3, "r0", 700, sold=0), item(4, "r0", [300, 200, 250], sold=7),
    ])  # fmt: skip
    write_run(store, "r1", 1, [
        item(1, "r1", [900, 1200], sold=14), item(3, "r1", 800, sold=1),
        item(4, "r1", [300, 200, 250], sold=7, stock=0), item(5, "r1", 4000, sold=2),
    ])  # fmt: skip
    write_run(store, "r2", 1.5, [
        item(1, "r2", [1, 1], sold=99), item(2, "r2", 1, sold=99), item(8, "r2", 1, sold=1),
    ], status="incomplete")  # fmt: skip
    write_run(store, "r3", 2, [
        item(1, "r3", [950, 1100], sold=20), item(2, "r3", 450, sold=5), item(3, "r3", 800, sold=1),
        item(4, "r3", [310, 210], sold=9), item(6, "r3", 120),
    ])  # fmt: skip
    write_run(store, "r4", 4, [
        item(1, "r4", [950, 1300], sold=23), item(2, "r4", 600, sold=4), item(3, "r4", 760, sold=6),
        item(6, "r4", 150), item(7, "r4", [99, 101], sold=0),
    ])  # fmt: skip


def yuan(fen: Decimal | int) -> str:
    return str((Decimal(fen) / 100).quantize(CENT, ROUND_HALF_EVEN))


def recompute(store, platform: str, seller: str) -> dict:
    """The trends figures from every complete run's observations, the slow obvious way."""
    runs = [r for r in store.runs_for(platform, seller) if r.status == "complete"]
    per_run = []
    for run in runs:
        items: dict[int, list] = {}
        for o in store.observations_for_run(run.run_id):  # in (item, SKU) order
            entry = items.setdefault(o.num_iid, [o.price_fen, 0, o.sold_quantity])
            entry[0], entry[1] = min(entry[0], o.price_fen), entry[1] + o.quantity
        per_run.append(items)
    totals = []
    for run, items in zip(runs, per_run, strict=True):
        sales = [e[2] for e in items.values() if e[2] is not None]
        median = statistics.median(Decimal(e[0]) for e in items.values()) if items else None
        totals.append(
            {
                "run_id": run.run_id,
                "started_at": run.started_at.isoformat(),
                "items": len(items),
                "stock": sum(e[1] for e in items.values()),
                "sales": sum(sales) if sales else None,
                "median_price": None if median is None else yuan(median),
            }
        )
    velocity = {}
    if len(runs) > 1 and any(t["sales"] is not None for t in totals):
        days = Decimal(str((runs[-1].started_at - runs[-2].started_at).total_seconds())) / 86400
        for n, now in per_run[-1].items():
            was = per_run[-2].get(n)
            if was and was[2] is not None and now[2] is not None:
                per_day = (Decimal(now[2] - was[2]) / days).quantize(CENT, ROUND_HALF_EVEN)
                velocity[n] = (now[2] - was[2], str(per_day))
    seen: dict[int, list[int]] = {}
    for items in per_run:
        for n, entry in items.items():
            seen.setdefault(n, []).append(entry[0])
    moves = {
        n: (yuan(prices[0]), yuan(prices[-1]))
        for n, prices in seen.items()
        if prices[0] != prices[-1] and prices[0]
    }
    return {"totals": totals, "velocity": velocity, "moves": moves}


def reported(report: dict) -> dict:
    movers = report["movers"]
    moved = movers["price_up"] + movers["price_down"]
    return {
        "totals": report["totals"],
        "velocity": {v["num_iid"]: (v["sold"], v["per_day"]) for v in report["velocity"]},
        "moves": {m["num_iid"]: (m["old"], m["new"]) for m in moved},
    }


def forget_totals(store) -> None:
    """Make the store look written before shop totals were kept with runs (SQLite schema 5)."""
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as conn:
            conn.execute("UPDATE runs SET totals = NULL")
            conn.commit()
    else:
        store._database().runs.update_many({}, {"$unset": {"totals": ""}})


def test_trends_equal_a_recomputation_from_every_observation_with_or_without_stored_totals(store):
    taobao_shop(store)
    assert set(store.run_totals("taobao", "s1")) == {"r0", "r1", "r3", "r4"}  # not the incomplete run
    report = trends(store, "taobao", "s1", top=100)
    expected = recompute(store, "taobao", "s1")
    assert reported(report) == expected
    assert report["runs"] == ["r0", "r1", "r3", "r4"] and report["sales_note"] is None
    # By hand, the figures that new, gone and relisted items make:
    assert [(t["items"], t["sales"]) for t in report["totals"]] == [(4, 20), (4, 24), (5, 35), (5, 33)]
    assert expected["moves"] == {
        1: ("10.00", "9.50"),  # its SKUs' lowest price
        2: ("5.00", "6.00"),  # relisted: the first and the last complete run it was seen in
        3: ("7.00", "7.60"),
        4: ("2.00", "2.10"),  # gone from the last run
        6: ("1.20", "1.50"),  # new in a middle run
    }
    assert report["velocity"][0] == {
        "num_iid": 1, "title": "商品 1", "from_run": "r3", "to_run": "r4", "sold": 3, "per_day": "1.50",
    }  # fmt: skip

    forget_totals(store)
    assert store.run_totals("taobao", "s1") == {}
    assert trends(store, "taobao", "s1", top=100) == report  # computed from the runs' items instead
    assert store.run_totals("taobao", "s1") == {}  # and nothing written


def test_html_price_history_is_every_complete_run_of_the_chosen_items(store):
    taobao_shop(store)
    history = load_history(store, "taobao", "s1")
    prices = sku_prices(store, history, [1, 2, 4, 8, 99])
    complete = [r.run_id for r in history.runs]
    expected: dict[int, dict[int, list]] = {n: {} for n in (1, 2, 4, 8, 99)}
    for k, run_id in enumerate(complete):
        for o in store.observations_for_run(run_id):
            if o.num_iid in expected:
                expected[o.num_iid].setdefault(o.sku_id, [None] * len(complete))[k] = o.price
    assert prices == expected
    assert prices[2] == {0: ["5.00", None, "4.50", "6.00"]}  # gone from r1, relisted; r2 is incomplete
    assert prices[8] == {} and prices[99] == {}
    page = make_report(store, "taobao", "s1")
    charted = {n for n in range(1, 9) if f'id="item-{n}"' in page}
    assert charted == {6, 2, 3, 1}  # the top 3 price rises and the one drop
    assert "<td>price_rise</td>" in page and "<td>new</td>" in page


def test_a_shop_without_sales_counts_has_totals_without_sales_and_no_velocity(store):
    write_run(
        store, "a0", 0, [item(1, "a0", 1990, platform="1688"), item(2, "a0", [500, 700], platform="1688")]
    )
    write_run(store, "a1", 1, [item(1, "a1", 1890, platform="1688"), item(3, "a1", 100, platform="1688")])
    report = trends(store, "1688", "s1")
    assert reported(report) == recompute(store, "1688", "s1")
    assert report["sales_note"] == NO_SALES and report["velocity"] == []
    assert [(t["items"], t["stock"], t["sales"], t["median_price"]) for t in report["totals"]] == [
        (2, 15, None, "12.45"),
        (2, 10, None, "9.95"),
    ]
    forget_totals(store)
    assert trends(store, "1688", "s1") == report


def test_one_complete_run_has_its_totals_and_nothing_that_needs_two(store):
    write_run(store, "only", 0, [item(1, "only", [100, 200], sold=1), item(2, "only", 300, sold=2)])
    write_run(store, "cut", 1, [item(1, "cut", 50, sold=9)], status="interrupted")
    report = trends(store, "taobao", "s1")
    assert reported(report) == recompute(store, "taobao", "s1")
    assert [(t["items"], t["stock"], t["sales"], t["median_price"]) for t in report["totals"]] == [
        (2, 15, 3, "2.00")
    ]
    assert report["velocity"] == [] and all(movers == [] for movers in report["movers"].values())
    assert "Only one complete run so far" in make_report(store, "taobao", "s1")

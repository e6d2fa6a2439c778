"""Trends over hand-built histories (pure), then `shopcrawl report trends` on two real sandbox crawls."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shopcrawl.monitor.trends import NO_SALES, History, summarise, totals, trends_command, velocities, yuan
from shopcrawl.stores import SqliteStore
from shopcrawl.stores.base import ItemRun, RunRecord, ShopTotals, median_fen
from tests.conftest import crawl

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _history(*runs: dict[int, ItemRun], days: float = 2) -> History:
    """The history of complete runs that saw ``runs``' items, ``days`` apart."""
    starts = [T0 + timedelta(days=days * i) for i in range(len(runs))]
    records = [RunRecord(f"r{i}", "taobao", "s", at, status="complete") for i, at in enumerate(starts)]
    first_last: dict[int, tuple[int, int]] = {}
    for items in runs:
        for num_iid, item in items.items():
            first_last[num_iid] = (first_last.get(num_iid, (item.price_fen,))[0], item.price_fen)
    totals = [ShopTotals.of(items) for items in runs]
    return History("taobao", "s", records, totals, list(runs[-2:]), first_last)


def test_median_is_exact_in_fen_and_printed_in_yuan():
    assert median_fen([]) is None
    assert median_fen([300, 100, 200]) == 200
    assert median_fen([101, 100]) == Decimal("100.5")
    assert yuan(Decimal("100.5")) == "1.00"  # a half fen rounds half-even
    assert yuan(Decimal("101.5")) == "1.02"
    assert yuan(123456) == "1234.56"


def test_totals_velocity_and_movers():
    first = {1: ItemRun(1000, 5, 10), 2: ItemRun(2000, 0, 40), 3: ItemRun(500, 3, 7)}
    second = {1: ItemRun(800, 4, 30), 2: ItemRun(2500, 2, 36), 4: ItemRun(999, 1, None)}
    history = _history(first, second)
    rows = totals(history)
    assert [(t.items, t.stock, t.sales, t.median_price) for t in rows] == [
        (3, 8, 57, "10.00"),
        (3, 7, 66, "9.99"),
    ]
    speeds = velocities(history)
    assert speeds[1] == {"from_run": "r0", "to_run": "r1", "sold": 20, "per_day": "10.00"}  # 20 in 2 days
    assert speeds[2]["per_day"] == "-2.00"
    assert 3 not in speeds and 4 not in speeds  # gone, or new without a count
    report = summarise(history, {1: "one", 2: "two"})
    movers = report["movers"]
    assert [v["num_iid"] for v in movers["velocity_up"]] == [1]
    assert [v["num_iid"] for v in movers["velocity_down"]] == [2]
    assert movers["price_up"] == [{"num_iid": 2, "title": "two", "old": "20.00", "new": "25.00", "pct": 25.0}]
    down = {"num_iid": 1, "title": "one", "old": "10.00", "new": "8.00", "pct": -20.0}
    assert movers["price_down"] == [down]
    assert report["sales_note"] is None


def test_velocity_is_the_latest_interval_only():
    history = _history({1: ItemRun(1, 1, 0)}, {1: ItemRun(1, 1, 100)}, {1: ItemRun(1, 1, 103)}, days=0.5)
    assert velocities(history) == {1: {"from_run": "r1", "to_run": "r2", "sold": 3, "per_day": "6.00"}}
    (entry,) = summarise(history, {1: "one"})["velocity"]
    assert entry == {
        "num_iid": 1,
        "title": "one",
        "from_run": "r1",
        "to_run": "r2",
        "sold": 3,
        "per_day": "6.00",
    }
    assert velocities(_history({1: ItemRun(1, 1, 0)}, {1: ItemRun(1, 1, 5)}, days=0)) == {}  # no time passed
    assert velocities(_history({1: ItemRun(1, 1, 0)})) == {}


def test_a_shop_without_sales_counts_says_so():
    history = _history({1: ItemRun(100, 1, None)}, {1: ItemRun(90, 1, None)})
    report = summarise(history, {})
    assert report["sales_note"] == NO_SALES
    assert report["velocity"] == [] and report["totals"][0]["sales"] is None
    out = io.StringIO()
    from shopcrawl.monitor.trends import print_trends

    print_trends(report, out)
    assert NO_SALES in out.getvalue()


def test_report_trends_on_two_sandbox_crawls(sandbox_factory, tmp_path, capsys):
    sandbox = sandbox_factory("--items", "40", "--seed", "21")
    assert crawl(sandbox.url, tmp_path).returncode == 0
    changed = sandbox.mutate(seed=4, price_up=2, price_down=2, new=1, delist=1)
    assert crawl(sandbox.url, tmp_path).returncode == 0
    store = f"sqlite:///{tmp_path / 'shop.db'}"
    args = argparse.Namespace(seller="demo", platform=None, store=store, json=True)
    assert trends_command(args) == 0
    report = json.loads(capsys.readouterr().out)
    shop = sandbox.shop()
    assert [t["items"] for t in report["totals"]] == [40, 40]
    assert report["totals"][-1]["stock"] == sum(
        sum(s["quantity"] for s in item["skus"]) if item.get("skus") else item["num"] for item in shop
    )
    assert report["totals"][-1]["sales"] == sum(item["sold_quantity"] for item in shop)
    stored = SqliteStore(tmp_path / "shop.db")
    stored.open()
    try:  # the crawls kept each complete run's totals with the run
        kept = stored.run_totals("taobao", "demo")
    finally:
        stored.close()
    assert [kept[run_id].items for run_id in report["runs"]] == [40, 40]
    ups = {m["num_iid"] for m in report["movers"]["price_up"]}
    downs = {m["num_iid"] for m in report["movers"]["price_down"]}
    assert ups == set(changed["price_up"]) and downs == set(changed["price_down"])
    args.json = False
    assert trends_command(args) == 0
    text = capsys.readouterr().out
    assert "shop totals" in text and "top movers, price drops" in text

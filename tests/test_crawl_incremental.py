"""End to end: incremental re-crawls against the real sandbox, into real SQLite files: what a second
crawl costs, that every listed item is observed, and the item lifecycle (delisted, relisted)."""

from __future__ import annotations

import math

from tests.conftest import crawl

TOP_LIST, TOP_DETAIL = "taobao.items.onsale.get", "taobao.items.seller.list.get"
MUTATION = {"seed": 7, "price_up": 10, "price_down": 10, "sold_out": 5, "delist": 5, "new": 5}


def _observed(result, run_id: str) -> set[int]:
    return {
        row[0] for row in result.query("SELECT DISTINCT num_iid FROM observations WHERE run_id = ?", run_id)
    }


def _runs(result) -> list[tuple]:
    return result.query("SELECT run_id, status, coverage FROM runs ORDER BY started_at")


def _status(result) -> dict[int, str]:
    return dict(result.query("SELECT num_iid, status FROM items"))


def test_top_second_crawl_fetches_only_the_changed_items(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "2000", "--seed", "3")
    first = crawl(sandbox.url, tmp_path)
    assert first.returncode == 0, first.stderr
    changed = sandbox.mutate(**MUTATION)
    sandbox.reset_stats()
    second = crawl(sandbox.url, tmp_path)
    assert second.returncode == 0, second.stderr
    truth = {item["num_iid"]: item for item in sandbox.shop()}
    refetch = {n for kind in ("price_up", "price_down", "sold_out", "new") for n in changed[kind]}
    calls = sandbox.stats()["calls"]
    assert calls[TOP_LIST] <= math.ceil(len(truth) / 200)
    assert calls[TOP_DETAIL] <= math.ceil(len(refetch) / 20)
    (run1, _, _), (run2, status, coverage) = _runs(second)
    assert (status, coverage) == ("complete", 1.0)
    assert _observed(second, run2) == set(truth)  # every listed item, fetched or carried forward
    # this run's observations are the truth: the sandbox's prices and stock, per item
    rows = second.query("SELECT num_iid, sku_id, price, quantity FROM observations WHERE run_id = ?", run2)
    for num_iid, sku_id, price, quantity in rows:
        item = truth[num_iid]
        if sku_id == 0:
            assert (price, quantity) == (item["price"], item["num"])
        else:
            sku = next(s for s in item["skus"] if s["sku_id"] == sku_id)
            assert (price, quantity) == (sku["price"], sku["quantity"])
    status_of = _status(second)
    assert {n for n, s in status_of.items() if s == "delisted"} == set(changed["delist"])
    assert {n for n, s in status_of.items() if s == "active"} == set(truth)
    assert "shopcrawl/detail/carried': " + str(len(truth) - len(refetch)) in second.log
    assert "shopcrawl/lifecycle/delisted': 5" in second.log
    delisted_at = second.query("SELECT delisted_at FROM items WHERE status = 'delisted'")
    assert all(
        at and at[0] >= first.scalar("SELECT finished_at FROM runs WHERE run_id = ?", run1)
        for at in delisted_at
    )


def test_top_unchanged_recrawl_costs_the_listing_alone(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "10000", "--seed", "5")
    first = crawl(sandbox.url, tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    sandbox.reset_stats()
    second = crawl(sandbox.url, tmp_path, timeout=600)
    assert second.returncode == 0, second.stderr
    assert sandbox.stats()["calls"] == {TOP_LIST: math.ceil(10000 / 200)}
    (_, _, _), (run2, status, coverage) = _runs(second)
    assert (status, coverage) == ("complete", 1.0)
    assert len(_observed(second, run2)) == 10000
    assert second.scalar("SELECT COUNT(*) FROM observations WHERE run_id = ?", run2) == second.scalar(
        "SELECT COUNT(*) FROM observations WHERE run_id != ?", run2
    )

"""End to end: incremental re-crawls against the real sandbox, into real SQLite files: what a second
crawl costs, that every listed item is observed, and the item lifecycle (delisted, relisted)."""

from __future__ import annotations

import math

from shopcrawl.platforms.aop import DETAIL_API, LISTING_API
from tests.conftest import CrawlResult, crawl

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
    assert "shopcrawl/listing/store_reads" not in first.log  # a shop the store never held: no reads
    sandbox.reset_stats()
    second = crawl(sandbox.url, tmp_path, timeout=600)
    assert second.returncode == 0, second.stderr
    assert sandbox.stats()["calls"] == {TOP_LIST: math.ceil(10000 / 200)}
    assert "'shopcrawl/listing/store_reads': 50," in second.log  # one read a listing page
    (_, _, _), (run2, status, coverage) = _runs(second)
    assert (status, coverage) == ("complete", 1.0)
    assert len(_observed(second, run2)) == 10000
    assert second.scalar("SELECT COUNT(*) FROM observations WHERE run_id = ?", run2) == second.scalar(
        "SELECT COUNT(*) FROM observations WHERE run_id != ?", run2
    )


def test_full_mode_fetches_every_detail_and_a_bad_mode_is_a_config_error(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "600", "--seed", "11")
    assert crawl(sandbox.url, tmp_path).returncode == 0
    sandbox.reset_stats()
    full = crawl(sandbox.url, tmp_path, extra_args=("-a", "mode=full"))
    assert full.returncode == 0, full.stderr
    assert sandbox.stats()["calls"] == {TOP_LIST: 3, TOP_DETAIL: 30}
    assert "shopcrawl/detail/carried" not in full.log
    sandbox.reset_stats()
    bad = crawl(sandbox.url, tmp_path, extra_args=("-a", "mode=fast"))
    assert bad.returncode == 2
    assert "mode= must be one of incremental, full" in bad.stderr
    assert sandbox.stats()["calls"] == {}


def test_an_old_detail_is_fetched_again(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "300", "--seed", "4")
    assert crawl(sandbox.url, tmp_path).returncode == 0
    sandbox.reset_stats()
    # every detail is older than 0 seconds: an unchanged shop is fetched in full again
    again = crawl(sandbox.url, tmp_path, env={"SHOPCRAWL_DETAIL_MAX_AGE": "0"})
    assert again.returncode == 0, again.stderr
    assert sandbox.stats()["calls"] == {TOP_LIST: 2, TOP_DETAIL: 15}


def test_an_incomplete_run_marks_nothing_delisted(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "1000", "--seed", "8")
    first = crawl(sandbox.url, tmp_path)
    assert first.returncode == 0, first.stderr
    # the same shop (same seed), but half its calls fail and nothing is retried: pages go unlisted
    flaky = sandbox_factory("--items", "1000", "--seed", "8", "--rate-5xx", "0.5")
    second = crawl(flaky.url, tmp_path, settings={"RETRY_TIMES": 0})
    (_, _, _), (run2, status, coverage) = _runs(second)
    assert status in ("incomplete", "failed") and (coverage or 0) < 1, (status, coverage)
    assert len(_observed(second, run2)) < 1000
    assert set(_status(second).values()) == {"active"}
    assert "shopcrawl/lifecycle/delisted': 0" in second.log


def test_gateway_unchanged_recrawl_costs_the_listing_alone(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "150", "--seed", "6", "--gateway-page-size", "20")
    args = ("-a", "api=gateway", "-a", "platform=taobao")
    first = crawl(sandbox.base, tmp_path, extra_args=args)
    assert first.returncode == 0, first.stderr + first.log[-2000:]
    listing = sandbox.stats()["calls"]["item_search_shop"]
    changed = sandbox.mutate(seed=2, price_up=2, sold_out=1, new=2)
    sandbox.reset_stats()
    second = crawl(sandbox.base, tmp_path, extra_args=args)
    assert second.returncode == 0, second.stderr
    calls = sandbox.stats()["calls"]
    refetch = len(changed["price_up"]) + len(changed["sold_out"]) + len(changed["new"])
    assert calls["item_get"] <= refetch, calls
    sandbox.reset_stats()
    third = crawl(sandbox.base, tmp_path, extra_args=args)
    assert third.returncode == 0, third.stderr
    calls = sandbox.stats()["calls"]
    assert set(calls) == {"item_search_shop"} and calls["item_search_shop"] <= listing + 2, calls
    runs = _runs(third)
    assert [status for _, status, _ in runs] == ["complete"] * 3
    assert len(_observed(third, runs[2][0])) == len(sandbox.shop())


def test_1688_unchanged_recrawl_costs_only_the_listing_pages(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "120", "--seed", "9")
    url = sandbox.base + "/openapi"
    assert crawl(url, tmp_path, extra_args=("-a", "api=1688")).returncode == 0
    sandbox.reset_stats()
    second = crawl(url, tmp_path, extra_args=("-a", "api=1688"))
    assert second.returncode == 0, second.stderr
    assert sandbox.stats()["calls"] == {LISTING_API: math.ceil(120 / 20)}
    (_, _, _), (run2, status, coverage) = _runs(second)
    assert (status, coverage) == ("complete", 1.0)
    assert len(_observed(second, run2)) == 120
    tiers = "SELECT COUNT(*) FROM tier_observations WHERE run_id = ?"
    assert second.scalar(tiers, run2) == second.scalar(tiers.replace("=", "!="), run2) > 0
    assert DETAIL_API not in sandbox.stats()["calls"]


def test_mongodb_second_crawl_fetches_only_the_changed_items(sandbox_factory, tmp_path, mongo_uri):
    import pymongo

    sandbox = sandbox_factory("--items", "800", "--seed", "12")
    env = {"SHOPCRAWL_STORE": mongo_uri}
    assert crawl(sandbox.url, tmp_path, env=env, timeout=600).returncode == 0
    changed = sandbox.mutate(**MUTATION)
    sandbox.reset_stats()
    second = crawl(sandbox.url, tmp_path, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    refetch = {n for kind in ("price_up", "price_down", "sold_out", "new") for n in changed[kind]}
    calls = sandbox.stats()["calls"]
    assert calls[TOP_DETAIL] <= math.ceil(len(refetch) / 20) and calls[TOP_LIST] == 4
    truth = {item["num_iid"] for item in sandbox.shop()}
    client = pymongo.MongoClient(mongo_uri)
    try:
        db = client.get_default_database()
        _, run2 = (r["run_id"] for r in db.runs.find(sort=[("started_at", 1)]))
        assert db.runs.find_one({"run_id": run2})["status"] == "complete"
        assert set(db.observations.distinct("num_iid", {"run_id": run2})) == truth
        delisted = {d["num_iid"] for d in db.items.find({"status": "delisted"})}
        assert delisted == set(changed["delist"])
        assert db.items.count_documents({"status": "active"}) == len(truth)
    finally:
        client.close()


def test_over_redis_two_workers_crawl_incrementally(sandbox_factory, tmp_path, redis_url):
    from tests.test_distributed import SECRET, SESSION, _wait, _workers

    sandbox = sandbox_factory("--items", "1200", "--seed", "31", "--app-secret", SECRET, "--session", SESSION)
    assert sorted(_wait(_workers(sandbox.url, tmp_path, redis_url, 2))) == [0, 0]
    changed = sandbox.mutate(**MUTATION)
    sandbox.reset_stats()
    assert sorted(_wait(_workers(sandbox.url, tmp_path, redis_url, 2))) == [0, 0]
    refetch = {n for kind in ("price_up", "price_down", "sold_out", "new") for n in changed[kind]}
    calls = sandbox.stats()["calls"]
    assert calls[TOP_LIST] == math.ceil(1200 / 200) and calls[TOP_DETAIL] <= math.ceil(len(refetch) / 20)
    result = CrawlResult(0, "", "", tmp_path / "shop.db")
    (_, _, _), (run2, status, coverage) = _runs(result)
    assert (status, coverage) == ("complete", 1.0)
    assert _observed(result, run2) == {item["num_iid"] for item in sandbox.shop()}
    assert {n for n, s in _status(result).items() if s == "delisted"} == set(changed["delist"])

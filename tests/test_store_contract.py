"""The Store contract: the same semantics from every backend, seen through the write methods and the
read helpers (count_items, iter_items, get_run, observations_for_run, rejects_for_run).

Each test runs on SQLite (a file in tmp_path) and on MongoDB (a database of its own on the test
MongoDB-wire server) in each of its item write shapes, ``upsert`` and ``diff``. Backend-specific
behaviour lives in test_store_sqlite.py / test_store_mongo.py.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shopcrawl.items import Reject
from shopcrawl.stores import SqliteStore, StoreError, open_store
from shopcrawl.stores.base import ItemRun, RunRecord, ShopTotals
from shopcrawl.stores.mongo import MongoStore
from shopcrawl.stores.null import NullStore
from tests.test_store_sqlite import GMT8, T0, make_item

# Keys MongoDB would refuse or read as operators and paths, at every depth; plus keys that already hold
# the escape characters, which must come back unchanged too.
HOSTILE = {
    "$set": {"price_fen": 1},
    "$where": "sleep(5000)",
    "a.b": [{"$inc": {"num": 1000}}, "plain", 3, {"c.d": {"$e": None}}],
    "nul\x00key": True,
    "．already": "＄x",
    "＄lead": 1,
    "back＼slash": 2.5,
    "$": "",
    ".": [],
    "": "empty key",
}


def seen(store, num_iid: int) -> tuple[datetime, datetime, str]:
    """(first_seen, last_seen, last_run_id) of one item: not exposed by the read helpers."""
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as conn:
            sql = "SELECT first_seen, last_seen, last_run_id FROM items WHERE num_iid = ?"
            first, last, run_id = conn.execute(sql, (num_iid,)).fetchone()
        return datetime.fromisoformat(first), datetime.fromisoformat(last), run_id
    doc = store._database().items.find_one({"num_iid": num_iid})
    return doc["first_seen"], doc["last_seen"], doc["last_run_id"]


def test_same_batch_twice_is_one_item_and_one_observation_per_sku(store):
    batch = [make_item(1), make_item(2), make_item(3, skus=0)]
    store.write_items(batch)
    store.write_items(batch)
    assert store.count_items() == 3
    assert store.count_items(platform="taobao", seller_id="s1") == 3
    assert store.count_items(seller_id="other") == store.count_items(platform="tmall") == 0
    keys = [(o.num_iid, o.sku_id) for o in store.observations_for_run("run-1")]
    assert keys == [(1, 10), (1, 11), (2, 20), (2, 21), (3, 0)]


def test_second_run_adds_observations_not_items(store, clock):
    store.write_items([make_item(1, "run-1")])
    clock.now = T0 + timedelta(hours=1)
    changed = make_item(1, "run-2")
    changed.skus[0].price, changed.skus[0].price_fen = "19.90", 1990
    changed.title = "新标题"
    store.write_items([changed])

    assert store.count_items() == 1
    assert seen(store, 1) == (T0, T0 + timedelta(hours=1), "run-2")
    assert [item.title for item in store.iter_items("s1")] == ["新标题"]
    assert [o.price_fen for o in store.observations_for_run("run-1")] == [2580, 2580]
    second = store.observations_for_run("run-2")
    assert [(o.sku_id, o.price, o.price_fen) for o in second] == [(10, "19.90", 1990), (11, "25.80", 2580)]
    assert second[0].observed_at == T0 + timedelta(hours=1)
    assert second[0].observed_at.utcoffset() == timedelta(0)


def test_item_without_skus_is_observed_as_sku_zero(store):
    item = make_item(9, skus=0)
    item.num, item.sold_quantity = 7, None
    store.write_items([item])
    (observation,) = store.observations_for_run("run-1")
    assert (observation.sku_id, observation.price, observation.price_fen) == (0, "25.80", 2580)
    assert (observation.quantity, observation.sold_quantity, observation.run_id) == (7, None, "run-1")


def test_prices_are_integer_fen_and_bad_items_write_nothing(store):
    store.write_items([make_item(1)])
    assert {type(o.price_fen) for o in store.observations_for_run("run-1")} == {int}
    (item,) = store.iter_items("s1")
    assert type(item.price_fen) is int and {type(s.price_fen) for s in item.skus} == {int}

    floaty = make_item(2)
    floaty.skus[1].price_fen = 25.8  # type: ignore[assignment]
    with pytest.raises(StoreError):
        store.write_items([make_item(3), floaty])
    naive = make_item(4)
    naive.modified = datetime(2024, 4, 30, 12, 0)
    with pytest.raises(ValueError, match="naive datetime"):
        store.write_items([make_item(5), naive])
    with pytest.raises(ValueError, match="no run_id"):
        store.write_items([make_item(6), make_item(7, run_id="")])
    assert store.count_items() == 1  # nothing of a refused batch was written


def test_iter_items_round_trips_items_exactly(store):
    items = [make_item(n) for n in (5, 1, 3, 4, 2)]
    items[0].modified = datetime(2024, 4, 30, 12, 0, 5, 123456, tzinfo=GMT8)  # microseconds kept
    items[0].list_time = None
    # No list directly inside a list: FerretDB 1.x refuses nested arrays (MongoDB takes them).
    items[1].extras = HOSTILE | {"nested": {"deeper": [HOSTILE, {"list": [HOSTILE]}]}}
    items[1].skus[0].props = {"颜色.分类": "黑色", "$size": "XL", "尺\x00码": "M", "ok": "1"}
    items[2].desc, items[2].cid, items[2].sold_quantity, items[2].skus = None, None, None, []
    store.write_items(items)
    stored = list(store.iter_items("s1", page_size=2))  # crosses page boundaries
    assert stored == sorted(items, key=lambda item: item.num_iid)
    by_id = {item.num_iid: item for item in stored}
    assert by_id[5].modified.utcoffset() == timedelta(hours=8)
    assert by_id[5].modified.microsecond == 123456
    assert by_id[1].extras["nested"]["deeper"][1] == {"list": [HOSTILE]}
    assert list(store.iter_items("nobody")) == []


def test_iter_items_orders_by_platform_then_num_iid(store):
    items = [make_item(2), make_item(1), make_item(3)]
    items[0].platform = "tmall"
    store.write_items(items)
    order = [(i.platform, i.num_iid) for i in store.iter_items("s1", page_size=1)]
    assert order == [("taobao", 1), ("taobao", 3), ("tmall", 2)]


def test_extras_are_read_back_as_json_holds_them(store):
    item = make_item(1)
    item.extras = {"when": T0, "pair": (1, "二"), 7: "int key", "big": 2**62, "ratio": 0.1}
    store.write_items([item])
    (stored,) = store.iter_items("s1")
    assert stored.extras == {
        "when": "2024-05-01T04:00:00+00:00",
        "pair": [1, "二"],
        "7": "int key",
        "big": 2**62,
        "ratio": 0.1,
    }


def test_rejects_are_idempotent_and_keep_payload(store):
    rejects = [
        Reject("taobao", "s1", "invalid/price: not a price", {"price": "abc", "modified": T0}, 1, "run-1"),
        Reject("taobao", "s1", "api/isv.item-not-found", {"标题": "连衣裙"} | HOSTILE, None, "run-1"),
        Reject("taobao", "s1", "api/isv.item-not-found", {"other": 1}, None, "run-2"),
        Reject("taobao", "s1", "detail/missing", {}, 2, "run-1"),
    ]
    store.write_rejects(rejects)
    store.write_rejects(rejects)
    store.write_rejects(rejects[1:2])
    stored = store.rejects_for_run("run-1")
    assert [r.reason for r in stored] == [rejects[0].reason, rejects[1].reason, rejects[3].reason]
    assert stored[0].payload == {"price": "abc", "modified": "2024-05-01T04:00:00+00:00"}
    assert stored[1:] == [rejects[1], rejects[3]]
    assert store.rejects_for_run("run-2") == [rejects[2]]
    assert store.rejects_for_run("run-3") == []


def test_run_record_round_trip(store):
    run = RunRecord("run-1", "taobao", "s1", started_at=datetime(2024, 5, 1, 12, 0, 0, 654321, tzinfo=GMT8))
    store.start_run(run)
    store.start_run(RunRecord("run-1", "taobao", "s1", started_at=T0 + timedelta(days=1)))  # no-op
    assert store.get_run("run-1") == run
    assert store.get_run("missing") is None

    run.finished_at = datetime(2024, 5, 1, 13, 30, tzinfo=GMT8)
    run.declared_total, run.items_listed, run.items_stored = 120, 119, 118
    run.items_rejected, run.items_missing, run.coverage = 1, 0, 119 / 120
    run.api_calls = {"taobao.items.onsale.get": 3, "taobao.items.seller.list.get": 6, "$odd": 1}
    run.retries, run.ban_wait_seconds, run.status, run.reason = 2, 1.5, "complete", "finished"
    store.finish_run(run)
    store.finish_run(run)
    stored = store.get_run("run-1")
    assert stored == run
    assert stored is not None and stored.finished_at is not None
    assert stored.started_at.microsecond == 654321
    assert stored.finished_at.utcoffset() == stored.started_at.utcoffset() == timedelta(0)  # kept as UTC
    assert isinstance(stored.coverage, float) and list(stored.api_calls) == list(run.api_calls)


def test_finish_run_without_start_inserts(store):
    run = RunRecord("run-x", "taobao", "s1", started_at=T0, finished_at=T0, status="failed", reason="boom")
    store.finish_run(run)
    assert store.get_run("run-x") == run


def test_threads_share_one_store(store):
    batches = [[make_item(n) for n in range(start, start + 20)] for start in range(0, 100, 10)]  # overlapping
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(store.write_items, batches))
    assert store.count_items() == 110
    assert len(store.observations_for_run("run-1")) == 220


def test_closed_store_refuses_writes_and_close_is_idempotent(store):
    store.close()
    store.close()
    with pytest.raises(StoreError, match="not open"):
        store.write_items([make_item(1)])
    store.open()
    store.open()
    store.write_items([make_item(1)])
    assert store.count_items() == 1


def test_open_store_builds_each_backend_without_connecting(tmp_path):
    assert isinstance(open_store(f"sqlite:///{tmp_path}/a.db"), SqliteStore)
    for uri in ("mongodb://app:hunter2@db.invalid:27017/shop", "mongodb+srv://cluster.invalid/shop"):
        store = open_store(uri)
        assert isinstance(store, MongoStore) and "hunter2" not in store.name
    assert isinstance(open_store("null://"), NullStore)
    for uri in ("mongodb://", "mongodb://app:hunter2@/shop", "null://somewhere"):
        with pytest.raises(ValueError, match="SHOPCRAWL_STORE") as excinfo:
            open_store(uri)
        assert "hunter2" not in str(excinfo.value) and "null://" in str(excinfo.value)


def test_null_store_accepts_everything_and_stores_nothing():
    store = NullStore()
    store.open()
    run = RunRecord("run-1", "taobao", "s1", started_at=datetime.now(UTC))
    store.start_run(run)
    store.write_items([make_item(1), make_item(2, run_id="")])
    store.write_rejects([Reject("taobao", "s1", "detail/missing", HOSTILE, None, "run-1")])
    store.finish_run(run)
    store.close()
    assert (store.items_written, store.rejects_written, store.count_items()) == (2, 1, 0)
    assert list(store.iter_items("s1")) == store.observations_for_run("run-1") == []
    assert store.get_run("run-1") is None and store.rejects_for_run("run-1") == []


def test_report_reads_runs_of_a_shop_items_observed_by_runs_and_titles(store):
    for n, run_id in enumerate(("run-a", "run-b", "run-c")):
        store.start_run(RunRecord(run_id, "taobao", "s1", T0 + timedelta(hours=n)))
    store.start_run(RunRecord("other", "taobao", "s2", T0))
    store.write_items([make_item(1, run_id="run-a"), make_item(2, run_id="run-a")])
    store.write_items([make_item(2, run_id="run-b"), make_item(3, run_id="run-c")])
    assert [r.run_id for r in store.runs_for("taobao", "s1")] == ["run-a", "run-b", "run-c"]
    assert store.runs_for("1688", "s1") == []
    assert store.observed_in("taobao", "s1", [1, 2, 3, 4], ["run-a"]) == {1, 2}
    assert store.observed_in("taobao", "s1", [1, 3], ["run-b", "run-c"]) == {3}
    assert (
        store.observed_in("taobao", "s1", [1], [])
        == set()
        == store.observed_in("taobao", "s2", [1], ["run-a"])
    )
    titles = store.titles_of("taobao", "s1", [1, 3, 99])
    assert set(titles) == {1, 3} and all(isinstance(t, str) and t for t in titles.values())


def test_a_complete_run_keeps_its_shop_totals_however_it_is_finished(store):
    cheap = make_item(2, run_id="run-1", skus=0)
    cheap.price, cheap.price_fen, cheap.sold_quantity = "9.99", 999, None
    store.start_run(RunRecord("run-1", "taobao", "s1", T0))
    store.write_items([make_item(1), cheap, make_item(3)])
    store.write_items([make_item(9, run_id="run-1", seller_id="s2")])  # another shop's item, same run id
    store.finish_run(RunRecord("run-1", "taobao", "s1", T0, finished_at=T0, status="complete"))
    # 3 items: stock 20 + 7 + 20, sales 3 + none + 3, prices 25.80, 9.99, 25.80
    assert store.run_totals("taobao", "s1") == {"run-1": ShopTotals(3, 47, 6, Decimal(2580))}
    store.finish_run(RunRecord("run-1", "taobao", "s1", T0, finished_at=T0, status="failed"))
    assert store.run_totals("taobao", "s1") == {}  # only a complete run has totals

    store.start_run(RunRecord("run-2", "taobao", "s1", T0 + timedelta(days=1)))
    store.write_items([make_item(1, run_id="run-2")])
    assert store.mark_abandoned("run-2", "abandoned: no heartbeat", T0 + timedelta(days=1))
    assert "run-2" not in store.run_totals("taobao", "s1")
    # the crawl thought dead finishes after all; then a distributed run closed by a worker that never
    # started it (finish_run inserts the record)
    store.finish_run(RunRecord("run-2", "taobao", "s1", T0, finished_at=T0, status="complete"))
    store.write_items([make_item(5, run_id="run-3", skus=0)])
    store.finish_run(RunRecord("run-3", "taobao", "s1", T0, finished_at=T0, status="complete"))
    assert store.run_totals("taobao", "s1") == {
        "run-2": ShopTotals(1, 20, 3, Decimal(2580)),
        "run-3": ShopTotals(1, 7, 3, Decimal(2580)),
    }
    assert store.run_totals("taobao", "s2") == store.run_totals("1688", "s1") == {}


def test_report_reads_of_a_run_s_items_and_of_a_few_items_over_all_runs(store):
    low = make_item(1, run_id="run-a")
    low.skus[1].price, low.skus[1].price_fen, low.skus[1].quantity = "19.90", 1990, 4
    store.write_items([low, make_item(2, run_id="run-a", skus=0)])
    store.write_items([make_item(2, run_id="run-b", skus=0), make_item(3, run_id="run-b")])
    store.write_items([make_item(4, run_id="run-a", seller_id="s2")])
    assert store.items_of_runs("taobao", "s1", ["run-a", "run-b", "x"]) == {
        "run-a": {1: ItemRun(1990, 14, 3), 2: ItemRun(2580, 7, 3)},
        "run-b": {2: ItemRun(2580, 7, 3), 3: ItemRun(2580, 20, 3)},
    }
    assert store.items_of_runs("taobao", "s2", ["run-b"]) == {} == store.items_of_runs("taobao", "s1", [])
    assert sorted((o.sku_id, o.price) for o in store.observations_of_items("taobao", "s1", [1, 99])) == [
        (10, "25.80"),
        (11, "19.90"),
    ]
    assert store.observations_of_items("taobao", "s1", []) == []
    assert store.item_ids("taobao", "s1") == [1, 2, 3] and store.item_ids("1688", "s1") == []
    assert store.runs_of_items("taobao", "s1", [1, 2, 4, 99]) == {1: {"run-a"}, 2: {"run-a", "run-b"}}
    assert store.runs_of_items("taobao", "s1", []) == {}
    found = store.observations_at("taobao", "s1", [(1, "run-a"), (2, "run-b"), (3, "run-a"), (4, "run-a")])
    assert sorted((o.num_iid, o.sku_id, o.run_id, o.price) for o in found) == [
        (1, 10, "run-a", "25.80"),
        (1, 11, "run-a", "19.90"),
        (2, 0, "run-b", "25.80"),
    ]
    assert found[0].observed_at.tzinfo is not None and store.observations_at("taobao", "s1", []) == []

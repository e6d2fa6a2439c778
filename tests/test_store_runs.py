"""What every store answers about runs: the per-item tally behind coverage, heartbeats, and
abandoning a running run. SQLite, MongoDB (the test server) and the null store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shopcrawl.items import Reject
from shopcrawl.stores import SqliteStore
from shopcrawl.stores.base import RunRecord, RunTally
from shopcrawl.stores.mongo import MongoStore
from shopcrawl.stores.null import NullStore
from tests.test_store_sqlite import T0, make_item


@pytest.fixture(params=["sqlite", "mongodb", "null"])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "shop.db")
    elif request.param == "mongodb":
        store = MongoStore(request.getfixturevalue("mongo_uri"))
    else:
        store = NullStore()
    store.open()
    yield store
    store.close()


def reject(num_iid, reason, run_id="run-1"):
    return Reject("taobao", "s1", reason, {"n": num_iid}, num_iid, run_id)


def test_the_tally_counts_each_item_once_by_its_best_outcome(store):
    store.write_items([make_item(1), make_item(2), make_item(3, skus=0)])
    store.write_items([make_item(1)])  # delivered twice: still one item
    store.write_items([make_item(9, run_id="run-2")])  # another run
    store.write_rejects(
        [
            reject(2, "invalid/price: bad"),  # stored after all: counts as stored
            reject(4, "invalid/title: empty"),
            reject(4, "failed/detail/-1: gave up"),  # rejected with a reason wins over failed
            reject(5, "detail/missing: omitted"),
            reject(6, "failed/detail/-1: gave up"),
            reject(7, "detail/isv.item-not-found: gone"),
            reject(None, "listing/bad-row: page 1 row 3: num_iid missing"),  # no item to count
            reject(8, "invalid/num: x", run_id="run-2"),
        ]
    )
    assert store.tally("run-1") == RunTally(stored=3, rejected=2, missing=1, failed=1)
    assert store.tally("run-2") == RunTally(stored=1, rejected=1)
    assert store.tally("nothing") == RunTally()


@pytest.mark.parametrize("store", ["sqlite", "mongodb"], indirect=True)
def test_a_running_run_is_abandoned_once_and_finishing_it_keeps_its_owner(store):
    store.start_run(RunRecord("old", "taobao", "s1", T0, heartbeat_at=T0, owner="host:1"))
    store.start_run(RunRecord("other-seller", "taobao", "s2", T0))
    store.heartbeat("old", T0 + timedelta(seconds=10))
    (old,) = store.running_runs("taobao", "s1")
    assert (old.run_id, old.owner, old.heartbeat_at) == ("old", "host:1", T0 + timedelta(seconds=10))
    assert store.mark_abandoned("old", "abandoned: gone", T0 + timedelta(minutes=5))
    assert not store.mark_abandoned("old", "again", T0 + timedelta(minutes=6))
    assert store.running_runs("taobao", "s1") == []
    gone = store.get_run("old")
    assert (gone.status, gone.reason, gone.finished_at) == (
        "abandoned",
        "abandoned: gone",
        T0 + timedelta(minutes=5),
    )
    store.heartbeat("old", T0 + timedelta(hours=1))  # a heartbeat does not touch a run that is over
    assert store.get_run("old").heartbeat_at == T0 + timedelta(seconds=10)
    done = RunRecord("other-seller", "taobao", "s2", T0, finished_at=T0, status="complete")
    store.finish_run(done)
    assert store.get_run("other-seller").status == "complete"
    store.finish_run(RunRecord("old", "taobao", "s1", T0, finished_at=T0, status="complete"))
    assert store.get_run("old").owner == "host:1"  # set at start, kept at the finish

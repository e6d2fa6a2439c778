"""The item lifecycle and the incremental crawl's store reads, on every backend (SQLite, and MongoDB in
both write shapes on the test MongoDB-wire server): ``items_by_id``, ``detail_at`` / ``listing_fp``,
``apply_lifecycle`` (active -> delisted -> relisted), and the SQLite 4 -> 5 migration."""

from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing
from datetime import timedelta

from shopcrawl.stores import SqliteStore
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.mongo import MongoStore
from shopcrawl.stores.null import NullStore
from shopcrawl.stores.sqlite import SCHEMA_VERSION
from tests.test_store_sqlite import T0, make_item


def _run(run_id: str, status: str, at) -> RunRecord:
    return RunRecord(run_id, "taobao", "s1", started_at=at, finished_at=at, status=status)


def _crawl(store, run_id: str, ids: list[int], clock, at) -> None:
    clock.now = at
    store.start_run(_run(run_id, "running", at))
    store.write_items([make_item(n, run_id) for n in ids])


def test_items_by_id_reads_one_shop_and_keeps_detail_age_and_fingerprint(store, clock):
    first = make_item(1)
    first.listing_fp = '["2024-04-30 12:00:05","25.80",20,3]'
    carried = dataclasses.replace(make_item(2), detail_at=T0 - timedelta(days=3), listing_fp="fp-2")
    store.write_items([first, carried, make_item(3, seller_id="other")])
    got = store.items_by_id("taobao", "s1", [1, 2, 3, 4])
    assert sorted(got) == [1, 2]
    assert got[1] == first and got[1].listing_fp == first.listing_fp
    # fetched now (the store's clock); MongoDB keeps the day (see mongo._day)
    day = T0.replace(hour=0) if isinstance(store, MongoStore) else T0
    assert got[1].detail_at == day
    assert got[2].detail_at == day - timedelta(days=3)  # carried forward: its detail's age is kept
    assert got[2].listing_fp == "fp-2"
    assert store.items_by_id("taobao", "s1", []) == {}
    assert store.items_by_id("1688", "s1", [1]) == {}


def test_a_complete_run_delists_the_unseen_and_a_later_sighting_relists(store, clock):
    _crawl(store, "r1", [1, 2, 3, 4], clock, T0)
    store.finish_run(_run("r1", "complete", T0))
    assert store.apply_lifecycle(_run("r1", "complete", T0)) == (0, 0)
    assert {n: s for n, (s, _) in store.item_status("taobao", "s1").items()} == dict.fromkeys(
        [1, 2, 3, 4], "active"
    )

    later = T0 + timedelta(hours=6)
    _crawl(store, "r2", [1, 2], clock, later)
    assert store.apply_lifecycle(_run("r2", "complete", later)) == (2, 0)
    status = store.item_status("taobao", "s1")
    assert status[1] == status[2] == ("active", None)
    assert status[3] == status[4] == ("delisted", later)

    # still absent from another complete run: stays delisted, delisted_at unchanged
    again = T0 + timedelta(hours=12)
    _crawl(store, "r3", [1, 2, 4], clock, again)
    assert store.apply_lifecycle(_run("r3", "complete", again)) == (0, 1)
    status = store.item_status("taobao", "s1")
    assert status[3] == ("delisted", later)
    assert status[4][0] == "relisted"


def test_an_incomplete_run_delists_nothing_but_relists_what_it_saw(store, clock):
    _crawl(store, "r1", [1, 2, 3], clock, T0)
    assert store.apply_lifecycle(_run("r1", "complete", T0)) == (0, 0)
    _crawl(store, "r2", [1], clock, T0 + timedelta(hours=1))
    assert store.apply_lifecycle(_run("r2", "complete", T0 + timedelta(hours=1))) == (2, 0)
    for status in ("incomplete", "failed", "interrupted", "abandoned"):
        at = T0 + timedelta(hours=2)
        _crawl(store, f"r-{status}", [2], clock, at)
        assert store.apply_lifecycle(_run(f"r-{status}", status, at))[0] == 0
    status = store.item_status("taobao", "s1")
    assert [status[n][0] for n in (1, 2, 3)] == ["active", "relisted", "delisted"]


def test_rejected_items_count_as_seen_missing_ones_do_not(store, clock):
    from shopcrawl.items import Reject

    _crawl(store, "r1", [1, 2, 3], clock, T0)
    store.apply_lifecycle(_run("r1", "complete", T0))
    _crawl(store, "r2", [1], clock, T0 + timedelta(hours=1))
    store.write_rejects(
        [
            Reject("taobao", "s1", "invalid/price: not a price", {}, 2, "r2"),
            Reject("taobao", "s1", "detail/missing: omitted", {}, 3, "r2"),
        ]
    )
    assert store.apply_lifecycle(_run("r2", "complete", T0 + timedelta(hours=1))) == (1, 0)
    assert store.item_status("taobao", "s1")[3][0] == "delisted"


def test_other_shops_are_untouched(store, clock):
    store.write_items([make_item(1, "r0", seller_id="other")])
    _crawl(store, "r1", [5], clock, T0)
    assert store.apply_lifecycle(_run("r1", "complete", T0)) == (0, 0)
    assert store.item_status("taobao", "other") == {1: ("active", None)}


def test_null_store_has_nothing_stored():
    null = NullStore()
    assert null.items_by_id("taobao", "s1", [1]) == {}
    assert null.apply_lifecycle(_run("r1", "complete", T0)) == (0, 0)


def test_a_version_4_file_gains_the_lifecycle_and_keeps_its_items(tmp_path):
    path = tmp_path / "v4.db"
    old = SqliteStore(path)
    old.open()
    old.write_items([make_item(1)])
    old.close()
    with closing(sqlite3.connect(path)) as conn:
        for column in ("detail_at", "listing_fp", "status", "delisted_at"):
            conn.execute(f"ALTER TABLE items DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    migrated = SqliteStore(path)
    migrated.open()
    try:
        (item,) = migrated.items_by_id("taobao", "s1", [1]).values()
        assert item == make_item(1) and (item.detail_at, item.listing_fp) == (None, "")
        assert migrated.item_status("taobao", "s1") == {1: ("active", None)}
        migrated.start_run(_run("r2", "running", T0))
        migrated.write_items([make_item(2, "r2")])
        assert migrated.apply_lifecycle(_run("r2", "complete", T0)) == (1, 0)
    finally:
        migrated.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (6,)


def test_a_detail_fetched_again_moves_detail_at_even_when_nothing_changed(store, clock):
    store.write_items([make_item(1)])
    clock.now = T0 + timedelta(days=2)
    store.write_items([make_item(1, "run-2")])  # the same content, fetched again (detail_at unset)
    (item,) = store.items_by_id("taobao", "s1", [1]).values()
    assert item.detail_at == (T0.replace(hour=0) if isinstance(store, MongoStore) else T0) + timedelta(days=2)

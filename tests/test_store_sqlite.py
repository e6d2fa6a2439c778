"""SqliteStore and open_store against real SQLite files in tmp_path."""

from __future__ import annotations

import multiprocessing
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from shopcrawl.items import Reject, ShopItem, Sku
from shopcrawl.stores import SqliteStore, StoreError, open_store, redact_uri
from shopcrawl.stores.base import RunRecord, ShopTotals
from shopcrawl.stores.sqlite import SCHEMA_VERSION

GMT8 = timezone(timedelta(hours=8))
T0 = datetime(2024, 5, 1, 4, 0, tzinfo=UTC)


def make_item(num_iid: int, run_id: str = "run-1", *, skus: int = 2, seller_id: str = "s1") -> ShopItem:
    return ShopItem(
        platform="taobao",
        seller_id=seller_id,
        num_iid=num_iid,
        title=f"连衣裙 {num_iid}",
        price="25.80",
        price_fen=2580,
        num=10 * skus or 7,
        sold_quantity=3,
        modified=datetime(2024, 4, 30, 12, 0, 5, tzinfo=GMT8),
        list_time=datetime(2024, 1, 2, 9, 0, tzinfo=GMT8),
        nick="小店",
        cid=50010850,
        outer_id=f"OUT-{num_iid}",
        pic_url="https://img.example/1.jpg",
        item_imgs=["https://img.example/1.jpg", "https://img.example/2.jpg"],
        desc="<p>描述</p>",
        skus=[
            Sku(
                sku_id=num_iid * 10 + i,
                properties_name=f"1627207:{i}:颜色:红",
                price="25.80",
                price_fen=2580,
                quantity=10,
                properties=f"1627207:{i}",
                outer_id=f"SKU-{i}",
            )
            for i in range(skus)
        ],
        run_id=run_id,
    )


class Clock:
    """A settable clock, so first_seen / last_seen are deterministic."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    store = SqliteStore(tmp_path / "shop.db", clock=clock)
    store.open()
    yield store
    store.close()


def query(path, sql, *args):
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


def test_open_creates_schema_in_wal_mode(store):
    names = {
        row[0] for row in query(store.path, "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    }
    assert {"items", "observations", "runs", "rejects"} <= names
    assert {"observations_by_sku", "runs_by_seller", "rejects_key"} <= names
    assert query(store.path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(store.path, "PRAGMA journal_mode") == [("wal",)]
    store.open()  # idempotent


def test_same_batch_twice_is_one_row_per_item_and_sku(store):
    batch = [make_item(1), make_item(2), make_item(3, skus=0)]
    store.write_items(batch)
    store.write_items(batch)
    assert store.count_items() == 3
    assert store.count_items(platform="taobao", seller_id="s1") == 3
    assert store.count_items(seller_id="other") == 0
    keys = [(o.num_iid, o.sku_id) for o in store.observations_for_run("run-1")]
    assert keys == [(1, 10), (1, 11), (2, 20), (2, 21), (3, 0)]


def test_items_round_trip_with_exact_money_and_aware_times(store):
    items = [make_item(n) for n in (5, 1, 3)]
    store.write_items(items)
    stored = list(store.iter_items("s1", page_size=2))  # crosses page boundaries
    assert stored == sorted(items, key=lambda item: item.num_iid)
    assert stored[0].modified.utcoffset() == timedelta(hours=8)
    assert query(store.path, "SELECT DISTINCT typeof(price_fen) FROM observations") == [("integer",)]
    assert list(store.iter_items("nobody")) == []


def test_float_money_and_naive_times_and_missing_run_id_are_refused(store):
    floaty = make_item(1)
    floaty.price_fen = 25.8  # type: ignore[assignment]
    with pytest.raises(StoreError, match="CHECK constraint"):
        store.write_items([floaty])
    naive = make_item(2)
    naive.modified = datetime(2024, 4, 30, 12, 0)
    with pytest.raises(ValueError, match="naive datetime"):
        store.write_items([naive])
    with pytest.raises(ValueError, match="no run_id"):
        store.write_items([make_item(3, run_id="")])
    assert store.count_items() == 0  # nothing half-written


def _write_from_process(path, barrier, first, last):
    """Runs in a spawned process: open at the same moment as the other, then write small batches."""
    store = SqliteStore(path)
    barrier.wait()
    store.open()
    try:
        for start in range(first, last, 10):
            store.write_items([make_item(n) for n in range(start, min(start + 10, last))])
            store.write_rejects([Reject("taobao", "s1", "detail/missing", {}, start, "run-1")])
    finally:
        store.close()


def test_two_processes_write_one_file(tmp_path):
    path = tmp_path / "shared" / "shop.db"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2, timeout=60)
    # 0-149 and 100-249: disjoint parts plus an overlap of 50 items written by both.
    workers = [
        ctx.Process(target=_write_from_process, args=(path, barrier, a, b)) for a, b in ((0, 150), (100, 250))
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=10)
    assert [worker.exitcode for worker in workers] == [0, 0]

    store = SqliteStore(path)
    store.open()
    assert store.count_items() == 250
    assert len(store.observations_for_run("run-1")) == 500
    assert len(store.rejects_for_run("run-1")) == 25  # starts 0,10,...,140 and 100,110,...,240
    store.close()


def test_persistently_locked_database_raises_store_error(tmp_path):
    store = SqliteStore(tmp_path / "shop.db", busy_timeout=0.01, lock_retries=1)
    store.open()
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked") as excinfo:
            store.write_items([make_item(1)])
        assert str(store.path) in str(excinfo.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.write_items([make_item(1)])  # the store is still usable
    assert store.count_items() == 1
    store.close()


def test_close_is_idempotent_and_closed_store_refuses_writes(tmp_path):
    store = SqliteStore(tmp_path / "shop.db")
    store.close()
    store.open()
    store.close()
    store.close()
    with pytest.raises(StoreError, match="not open"):
        store.write_items([make_item(1)])


def test_missing_directory_is_created(tmp_path):
    store = SqliteStore(tmp_path / "a" / "b" / "shop.db")
    store.open()
    store.close()
    assert (tmp_path / "a" / "b" / "shop.db").is_file()


def test_unwritable_path_raises_store_error(tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    path = tmp_path / "not-a-dir" / "shop.db"
    with pytest.raises(StoreError, match="not-a-dir"):
        SqliteStore(path).open()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "shop.db"
    query(path, "PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema 99"):
        SqliteStore(path).open()


def test_open_store_sqlite_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///data/rel.db")
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")  # four slashes: the path starts with /
    assert isinstance(relative, SqliteStore) and isinstance(absolute, SqliteStore)
    assert (relative.path, absolute.path) == (Path("data/rel.db"), tmp_path / "abs.db")
    relative.open()
    relative.close()
    assert (tmp_path / "data" / "rel.db").is_file()


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://app:hunter2@/shop",
        "postgres://hunter2@db.example/shop",
        "/var/lib/shop.db",
        "sqlite://host/shop.db",
        "sqlite:///",
        "sqlite://:memory:",
        "sqlite:///shop.db?mode=ro",
        "sqlite://app:hunter2@/shop.db",
    ],
)
def test_open_store_rejects_bad_uris_without_leaking_secrets(uri):
    with pytest.raises(ValueError, match="SHOPCRAWL_STORE") as excinfo:
        open_store(uri)
    message = str(excinfo.value)
    assert "sqlite:///" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "mongodb://app:hunter2@db:27017/shop?authSource=admin",
            "mongodb://app:***@db:27017/shop?authSource=admin",
        ),
        ("mongodb://app:pa/ss@word@db/shop", "mongodb://app:***@db/shop"),
        ("redis://:hunter2@localhost:6379/0", "redis://***@localhost:6379/0"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("sqlite:////var/lib/shop.db", "sqlite:////var/lib/shop.db"),
    ],
)
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected
    assert "hunter2" not in redact_uri(uri, keep_user=False)


def test_a_version_1_file_is_migrated_and_keeps_its_items(tmp_path):
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE items (platform TEXT NOT NULL, seller_id TEXT NOT NULL, num_iid INTEGER NOT NULL, "
            "title TEXT NOT NULL, price TEXT NOT NULL, price_fen INTEGER NOT NULL, num INTEGER NOT NULL, "
            "sold_quantity INTEGER, modified TEXT NOT NULL, approve_status TEXT NOT NULL, list_time TEXT, "
            "nick TEXT NOT NULL, cid INTEGER, outer_id TEXT NOT NULL, pic_url TEXT NOT NULL, "
            'item_imgs TEXT NOT NULL, "desc" TEXT, skus TEXT NOT NULL, first_seen TEXT NOT NULL, '
            "last_seen TEXT NOT NULL, last_run_id TEXT NOT NULL, PRIMARY KEY (platform, seller_id, num_iid))"
        )
        conn.execute(
            "INSERT INTO items VALUES ('taobao','s1',7,'t','1.00',100,1,NULL,'2026-01-01T00:00:00+08:00',"
            "'onsale',NULL,'n',NULL,'','','[]',NULL,'[]','2026-01-01T00:00:00+00:00',"
            "'2026-01-01T00:00:00+00:00','r0')"
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    store = SqliteStore(path)
    store.open()
    try:
        assert [item.extras for item in store.iter_items("s1")] == [{}]
        store.write_items([make_item(8)])
        assert store.count_items() == 2
    finally:
        store.close()
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_rejects_are_stored_as_readable_json_once(store):
    """SQLite specifics; the reject semantics both stores share are in test_store_contract.py."""
    reject = Reject("taobao", "s1", "api/isv.item-not-found", {"标题": "连衣裙"}, None, "run-1")
    store.write_rejects([reject, reject])
    assert "连衣裙" in query(store.path, "SELECT payload FROM rejects")[0][0]
    assert query(store.path, "SELECT COUNT(*) FROM rejects") == [(1,)]


def test_a_version_2_file_gains_run_liveness_and_keeps_its_runs(tmp_path):
    path = tmp_path / "v2.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, platform TEXT NOT NULL, seller_id TEXT NOT NULL, "
            "started_at TEXT NOT NULL, finished_at TEXT, declared_total INTEGER, "
            "items_listed INTEGER NOT NULL, items_stored INTEGER NOT NULL, items_rejected INTEGER NOT NULL, "
            "items_missing INTEGER NOT NULL, coverage REAL, api_calls TEXT NOT NULL, "
            "retries INTEGER NOT NULL, ban_wait_seconds REAL NOT NULL, "
            "status TEXT NOT NULL, reason TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO runs VALUES ('old','taobao','s1','2026-01-01T00:00:00+00:00',NULL,NULL,0,0,0,0,NULL,"
            "'{}',0,0.0,'running','')"
        )
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
    store = SqliteStore(path)
    store.open()
    try:
        (old,) = store.running_runs("taobao", "s1")
        assert (old.run_id, old.owner, old.heartbeat_at, old.items_failed) == ("old", "", None, 0)
        assert store.mark_abandoned("old", "abandoned: test", T0)
    finally:
        store.close()
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_a_version_5_file_gains_run_totals_and_its_old_runs_have_none(tmp_path):
    path = tmp_path / "v5.db"
    old = SqliteStore(path)
    old.open()
    old.start_run(RunRecord("old", "taobao", "s1", T0))
    old.write_items([make_item(1, "old")])
    old.finish_run(RunRecord("old", "taobao", "s1", T0, finished_at=T0, status="complete"))
    old.close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN totals")
        conn.execute("PRAGMA user_version = 5")
        conn.commit()
    migrated = SqliteStore(path)
    migrated.open()
    try:
        assert migrated.get_run("old").status == "complete"
        assert migrated.run_totals("taobao", "s1") == {}  # finished before totals were kept
        migrated.start_run(RunRecord("new", "taobao", "s1", T0 + timedelta(days=1)))
        migrated.write_items([make_item(1, "new"), make_item(2, "new", skus=0)])
        migrated.finish_run(RunRecord("new", "taobao", "s1", T0, finished_at=T0, status="complete"))
        assert migrated.run_totals("taobao", "s1") == {"new": ShopTotals(2, 27, 6, Decimal(2580))}
    finally:
        migrated.close()
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(6,)]

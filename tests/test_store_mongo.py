"""MongoStore-only behaviour against the real MongoDB-wire test server: indexes, key escaping in the
raw documents, round trips, errors, concurrent writers and an outage. The shared semantics are in
test_store_contract.py."""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
from pymongo.errors import DuplicateKeyError

from shopcrawl.items import Reject
from shopcrawl.stores import StoreError
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.keys import (
    DOLLAR,
    DOT,
    ESCAPE,
    NUL,
    escape_key,
    escape_keys,
    unescape_key,
    unescape_keys,
)
from shopcrawl.stores.mongo import INDEXES, MongoStore
from tests.test_store_sqlite import T0, make_item

INJECTION = {"$set": {"price_fen": 1}, "$where": "sleep(5000)", "$inc": {"num": 1000}}


@pytest.fixture
def store(mongo_uri):
    store = MongoStore(mongo_uri)
    store.open()
    yield store
    store.close()


def bad_keys(value, path="") -> list[str]:
    """Every key under ``value`` that MongoDB would refuse or read as an operator or a path."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key.startswith("$") or "." in key or "\x00" in key:
                found.append(f"{path}/{key!r}")
            found += bad_keys(child, f"{path}/{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += bad_keys(child, f"{path}[{index}]")
    return found


def test_key_escaping_is_a_round_trip_and_leaves_no_bad_key():
    alphabet = ["$", ".", "\x00", DOLLAR, DOT, NUL, ESCAPE, "a"]
    for length in range(5):  # every key of up to 4 of these characters: 4,681 keys
        for chars in itertools.product(alphabet, repeat=length):
            key = "".join(chars)
            stored = escape_key(key)
            assert unescape_key(stored) == key, key
            assert bad_keys({stored: 1}) == [], key
            untouched = not key.startswith(("$", DOLLAR)) and not set(key) & {".", "\x00", DOT, NUL, ESCAPE}
            assert (stored == key) is untouched, key
    data = {"$a": [{"b.c": ("x", {"\x00": {"ok": 1}})}], 7: "seven"}
    stored, count = escape_keys(data)
    assert count == 3 and unescape_keys(stored) == {"$a": [{"b.c": ("x", {"\x00": {"ok": 1}})}], "7": "seven"}
    assert data == {"$a": [{"b.c": ("x", {"\x00": {"ok": 1}})}], 7: "seven"}  # the input is not changed


def test_open_creates_the_indexes(store):
    db = store._database()
    for collection, name, keys, unique in INDEXES:
        index = {i["name"]: i for i in db[collection].list_indexes()}[name]
        assert list(index["key"]) == list(keys), name
        assert bool(index.get("unique")) is unique, name
    store.close()
    store.open()  # idempotent: the indexes exist already


def test_unique_indexes_refuse_duplicates(store):
    store.write_items([make_item(1)])
    store.start_run(RunRecord("run-1", "taobao", "s1", started_at=T0))
    store.write_rejects([Reject("taobao", "s1", "detail/missing", {}, None, "run-1")])
    db = store._database()
    copies = {
        "items": db.items.find_one({"num_iid": 1}),
        "observations": db.observations.find_one({"sku_id": 10}),
        "runs": db.runs.find_one({"run_id": "run-1"}),
        "rejects": db.rejects.find_one({"num_iid": None}),  # null num_iid: still one per key
    }
    for collection, doc in copies.items():
        doc["_id"] = f"another {collection}"
        with pytest.raises(DuplicateKeyError):
            db[collection].insert_one(doc)


def test_database_defaults_to_shopcrawl(mongo_server):
    store = MongoStore(mongo_server + "/?appname=shopcrawl-test")
    store.open()
    try:
        assert store._database().name == "shopcrawl"
    finally:
        store.close()


def test_escaped_keys_are_counted_and_raw_documents_hold_none(store):
    item = make_item(1)
    item.extras = {"ok": 1, "$set": {"a.b": 1, "fine": [{"x\x00y": 2}]}, "．": 3}
    item.skus[0].props = {"颜色.分类": "黑", "尺码": "XL"}
    store.write_items([item])
    assert store.escaped_keys == 5  # $set, a.b, x\0y, the literal ．, 颜色.分类
    store.write_rejects([Reject("taobao", "s1", "invalid/x", {"$where": {"k.k": 1}}, 1, "run-1")])
    assert store.escaped_keys == 7

    db = store._database()
    for collection in ("items", "observations", "rejects"):
        for doc in db[collection].find():
            assert bad_keys(doc) == [], collection
    raw = db.items.find_one()
    assert raw["extras"] == {"ok": 1, f"{DOLLAR}set": {f"a{DOT}b": 1, "fine": [{f"x{NUL}y": 2}]}, "＼．": 3}
    assert raw["skus"][0]["props"] == {f"颜色{DOT}分类": "黑", "尺码": "XL"}
    assert list(store.iter_items("s1")) == [item]


def test_injection_corpus_changes_no_other_field(store):
    item = make_item(1)
    item.extras = dict(INJECTION)
    item.skus[0].props = {key: str(value) for key, value in INJECTION.items()}
    for _ in range(2):  # an insert, then an update of the existing document
        started = time.monotonic()
        store.write_items([item])
        assert time.monotonic() - started < 2  # no $where ran
    raw = store._database().items.find_one()
    assert (raw["price_fen"], raw["num"], raw["skus"][0]["price_fen"]) == (2580, 20, 2580)
    assert set(raw) >= {"price_fen", "num", "extras"} and "$set" not in raw and "$inc" not in raw
    assert [o.price_fen for o in store.observations_for_run("run-1")] == [2580, 2580]
    assert list(store.iter_items("s1")) == [item]


def test_round_trips_per_thousand_items_with_the_default_batch(store):
    # A pipeline batch of 1,000 items of 3 SKUs: find existing, insert 1,000 items, insert 3,000
    # observations; a second run of the same items also deletes the old documents first.
    store.write_items([make_item(n, skus=3) for n in range(1000)])
    assert store.round_trips == 3
    store.write_items([make_item(n, "run-2", skus=3) for n in range(1000)])
    assert store.round_trips - 3 == 4 <= 5
    assert store.count_items() == 1000
    assert len(store.observations_for_run("run-1")) == len(store.observations_for_run("run-2")) == 3000


def test_batches_hold_at_most_batch_size_operations(mongo_uri):
    store = MongoStore(mongo_uri, batch_size=100)
    store.open()
    try:
        store.write_items([make_item(n, skus=3) for n in range(250)])
        assert store.round_trips == 3 + 3 + 8  # 3 finds, 3 inserts of <= 100 items, 750 observations
        store.write_items([make_item(n, skus=3) for n in range(200, 300)])  # 50 exist, 50 new
        store.write_rejects([Reject("taobao", "s1", f"r{n}", {}, n, "run-1") for n in range(150)])
        assert store.round_trips == 14 + (1 + 1 + 1 + 3) + 2  # find, delete, insert, observations
        assert store.count_items() == 300
    finally:
        store.close()


def test_unreachable_server_fails_fast_without_the_password():
    store = MongoStore("mongodb://user:hunter2@127.0.0.1:1/x")  # port 1 refuses on loopback
    started = time.monotonic()
    with pytest.raises(StoreError) as excinfo:
        store.open()
    assert time.monotonic() - started < 10
    message = str(excinfo.value)
    assert "127.0.0.1:1" in message and "mongodb://user:***@127.0.0.1:1/x" in message
    assert "hunter2" not in message and "hunter2" not in repr(excinfo.value.__cause__)
    store.close()


def test_a_value_bson_cannot_hold_raises_store_error(store):
    item = make_item(1)
    item.extras = {"n": 2**70}  # BSON integers end at 2**63 - 1
    with pytest.raises(StoreError, match=r"write 1 items failed: .*8-byte ints"):
        store.write_items([item])
    assert store.count_items() == 0


def test_an_upsert_colliding_with_a_foreign_document_raises(store):
    doc = {"_id": "written by something else", "platform": "taobao", "seller_id": "s1", "num_iid": 1}
    store._database().items.insert_one(doc)
    with pytest.raises(StoreError, match="write 1 items failed"):
        store.write_items([make_item(1)])


def test_concurrent_writers_race_on_the_same_items(mongo_uri):
    """Two workers (two clients) upsert the same new items at the same moment, three times."""
    stores = [MongoStore(mongo_uri), MongoStore(mongo_uri)]
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def write(store: MongoStore) -> None:
        try:
            for round_ in range(3):
                batch = [make_item(n, skus=3) for n in range(round_ * 100, round_ * 100 + 150)]
                barrier.wait()
                store.write_items(batch)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    for store in stores:
        store.open()
    workers = [threading.Thread(target=write, args=(store,)) for store in stores]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert errors == [] and not any(worker.is_alive() for worker in workers)
        db = stores[0]._database()
        assert stores[0].count_items() == db.items.count_documents({}) == 350
        assert len({doc["_id"] for doc in db.items.find()}) == 350
        assert len(stores[0].observations_for_run("run-1")) == 1050
    finally:
        for store in stores:
            store.close()


class FlakyProxy:
    """A loopback TCP forwarder in front of the test server. ``cut()`` drops every connection and
    refuses new ones (accepts, then closes them) until ``restore()``: an outage as a client sees it,
    while the server itself keeps its data."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refused = 0
        self._up = True
        self._sockets: set[socket.socket] = set()
        self._cond = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:  # ends when close() shuts the listener
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._cond:
                if not self._up:
                    self.refused += 1
                    self._cond.notify_all()
                    for sock in (client, server):
                        sock.close()
                    continue
                self._sockets |= {client, server}
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):  # ends at EOF or when cut() shuts the sockets
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _shut(sock)

    def cut(self) -> None:
        with self._cond:
            self._up = False
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _shut(sock)

    def restore(self) -> None:
        with self._cond:
            self._up = True

    def wait_refused(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.refused >= count, timeout)

    def close(self) -> None:
        self.cut()
        _shut(self.listener)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def test_an_outage_is_retried_and_loses_nothing(mongo_server, mongo_uri, caplog):
    address = mongo_server.removeprefix("mongodb://")
    host, _, port = address.rpartition(":")
    if not port.isdigit() or any(c in address for c in "@,/?"):
        pytest.skip(f"the outage test needs a plain mongodb://host:port server, not {mongo_server}")
    proxy = FlakyProxy(host, int(port))
    database = mongo_uri.rpartition("/")[2]
    store = MongoStore(f"mongodb://127.0.0.1:{proxy.port}/{database}", server_selection_timeout=1)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store.write_items([make_item(n) for n in range(10, 40)])
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    try:
        store.open()
        store.write_items([make_item(n) for n in range(10)])
        proxy.cut()
        with caplog.at_level(logging.WARNING, logger="shopcrawl.stores.mongo"):
            writer.start()
            assert proxy.wait_refused(3, timeout=30)  # the server is unreachable, for a while
            assert writer.is_alive() and errors == []  # ... and the write waits, retrying
            proxy.restore()
            writer.join(timeout=60)
        assert not writer.is_alive() and errors == []
        assert any("retry" in record.getMessage() for record in caplog.records)
        assert store.count_items() == 40
        assert len(store.observations_for_run("run-1")) == 80
    finally:
        proxy.restore()
        writer.join(timeout=60)
        store.close()
        proxy.close()


def test_retries_end_with_store_error_after_retry_seconds(mongo_server, mongo_uri):
    address = mongo_server.removeprefix("mongodb://")
    host, _, port = address.rpartition(":")
    if not port.isdigit() or any(c in address for c in "@,/?"):
        pytest.skip(f"needs a plain mongodb://host:port server, not {mongo_server}")
    proxy = FlakyProxy(host, int(port))
    database = mongo_uri.rpartition("/")[2]
    store = MongoStore(
        f"mongodb://127.0.0.1:{proxy.port}/{database}", server_selection_timeout=0.5, retry_seconds=2
    )
    try:
        store.open()
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"write 1 items failed after \d+ attempts"):
            store.write_items([make_item(1)])
        assert timedelta(seconds=time.monotonic() - started) < timedelta(seconds=10)
    finally:
        store.close()
        proxy.close()

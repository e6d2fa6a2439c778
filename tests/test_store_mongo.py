"""MongoStore-only behaviour against the real MongoDB-wire test server: indexes, key escaping in the
raw documents, the two item write shapes (their round trips, documents and crash safety), errors,
concurrent writers and an outage. The shared semantics are in test_store_contract.py."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError

from shopcrawl.items import Reject, ShopItem
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
from shopcrawl.stores.mongo import (
    FERRETDB_UPDATES_PER_COMMAND,
    HASH_FIELD,
    INDEXES,
    SHAPE_OPTION,
    MongoStore,
    content_hash,
)
from tests.test_store_sqlite import T0, Clock, make_item

REPO = Path(__file__).resolve().parent.parent
INJECTION = {"$set": {"price_fen": 1}, "$where": "sleep(5000)", "$inc": {"num": 1000}}
SHAPES = ("upsert", "diff")


@pytest.fixture(params=SHAPES)
def shape(request) -> str:
    return str(request.param)


@pytest.fixture
def store(mongo_uri, shape):
    store = MongoStore(mongo_uri, write_shape=shape)
    store.open()
    yield store
    store.close()


def with_option(uri: str, option: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{option}"


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


class RecordingStore(MongoStore):
    """A MongoStore that notes which operations each command it sends holds: (collection, op types)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, list[str]]] = []

    def _send(self, name, batch, what):
        self.sent.append((name, sorted({type(op).__name__ for op in batch})))
        return super()._send(name, batch, what)

    def item_commands(self) -> list[list[str]]:
        commands = [ops for name, ops in self.sent if name == "items"]
        self.sent.clear()
        return commands


# Commands per write of one batch of items, by shape. The diff shape inserts first and reads back only
# the items the insert found already stored: a first crawl reads nothing.
ROUND_TRIPS = {
    "upsert": {"first": 2, "again": 2, "mixed": 2},  # upserts, observations
    "diff": {"first": 2, "again": 3, "mixed": 4},  # insert, [find, upserts], observations
}


def is_ferretdb(store: MongoStore) -> bool:
    info = store._database().client.admin.command("buildInfo")
    return any(key.startswith("ferretdb") for key in info)


def test_round_trips_per_thousand_items_with_the_default_batch(mongo_uri, shape):
    # The same clock throughout: a write that changes nothing costs FerretDB no update, so the diff
    # shape stays fast on the test server. FerretDB 1.24 never answers an update command of about 100
    # statements, so there the store sends at most FERRETDB_UPDATES_PER_COMMAND upserts a command, and
    # the upsert shape is counted on batches that fit one command.
    store = MongoStore(mongo_uri, write_shape=shape, clock=Clock())
    store.open()
    try:
        size = FERRETDB_UPDATES_PER_COMMAND - 10 if shape == "upsert" and is_ferretdb(store) else 1000
        counts = {}
        batch = [make_item(n, skus=3) for n in range(size)]
        for name, items in (("first", batch), ("again", batch)):
            before = store.round_trips
            store.write_items(items)
            counts[name] = store.round_trips - before
        mixed = [make_item(n, skus=3) for n in range(10, size + 10)]  # size - 10 stored and 10 new
        for item in mixed[:10]:
            item.title += " (renamed)"  # 10 changed, the others unchanged
        before = store.round_trips
        store.write_items(mixed)
        counts["mixed"] = store.round_trips - before
        assert counts == ROUND_TRIPS[shape]
        assert max(counts.values()) <= 5
        assert store.count_items() == size + 10
        assert len(store.observations_for_run("run-1")) == 3 * (size + 10)
        titles = [item.title for item in store.iter_items("s1")]
        assert titles[10:20] == [f"连衣裙 {n} (renamed)" for n in range(10, 20)]
    finally:
        store.close()


def test_batches_hold_at_most_batch_size_operations(mongo_uri, shape):
    store = MongoStore(mongo_uri, batch_size=50, write_shape=shape, clock=Clock())
    store.open()
    try:
        store.write_items([make_item(n, skus=3) for n in range(250)])
        first = 5 + 15  # 5 item writes (diff: inserts, no find: nothing is stored yet), 750 observations
        assert store.round_trips == first
        store.write_items([make_item(n, skus=3) for n in range(200, 300)])  # 50 stored unchanged, 50 new
        store.write_rejects([Reject("taobao", "s1", f"r{n}", {}, n, "run-1") for n in range(150)])
        # upsert: 2 x 50 upserts; diff: an insert that finds the 50 stored and a find of their hashes
        # (unchanged: nothing written), an insert of the 50 new;
        # 300 observations, 150 rejects
        assert store.round_trips == first + {"upsert": 2, "diff": 3}[shape] + 6 + 3
        assert store.count_items() == 300
    finally:
        store.close()


def test_auto_shape_follows_the_server_and_can_be_asked_for(mongo_server, mongo_uri, caplog):
    client: MongoClient = MongoClient(mongo_server, serverSelectionTimeoutMS=5000)
    try:
        info = client.admin.command("buildInfo")
    finally:
        client.close()
    ferretdb = any(key.startswith("ferretdb") for key in info)  # FerretDB 1.x: ferretdbVersion, ...
    if not os.environ.get("SHOPCRAWL_TEST_MONGO_URI"):
        assert ferretdb and "ferretdbVersion" in info  # the test server is FerretDB
    store = MongoStore(mongo_uri)
    assert store.write_shape == "auto"
    with caplog.at_level(logging.INFO, logger="shopcrawl.stores.mongo"):
        store.open()
    try:
        assert store.write_shape == ("diff" if ferretdb else "upsert")
        (line,) = [r.getMessage() for r in caplog.records if "items are written in" in r.getMessage()]
        assert f"'{store.write_shape}' shape" in line
        assert ("FerretDB" in line) is ferretdb
    finally:
        store.close()
    for asked in SHAPES:
        chosen = MongoStore(with_option(mongo_uri, f"{SHAPE_OPTION}={asked}"))
        chosen.open()
        try:
            assert chosen.write_shape == asked
            chosen.write_items([make_item(1)])  # pymongo never saw the option
        finally:
            chosen.close()
    with pytest.raises(ValueError, match="write shape 'merge'"):
        MongoStore(mongo_uri, write_shape="merge")


def test_first_seen_stays_while_last_seen_and_run_move(mongo_uri, shape):
    clock = Clock()
    store = RecordingStore(mongo_uri, write_shape=shape, clock=clock)
    store.open()
    try:
        db = store._database()

        def seen() -> dict[int, tuple]:
            fields = ("first_seen", "last_seen", "last_run_id", "price_fen")
            return {d["num_iid"]: tuple(d[f] for f in fields) for d in db.items.find()}

        store.write_items([make_item(1), make_item(2)])
        assert store.item_commands() == {"upsert": [["UpdateOne"]], "diff": [["InsertOne"]]}[shape]
        assert seen() == {n: (T0, T0, "run-1", 2580) for n in (1, 2)}

        clock.now = T0 + timedelta(hours=1)  # a new run, the same content
        store.write_items([make_item(1, "run-2"), make_item(2, "run-2")])
        # The diff shape (FerretDB) writes nothing for unchanged items (its insert is refused by their
        # _id, which is how it learns they are stored): last_seen and the run stay.
        assert store.item_commands() == {"upsert": [["UpdateOne"]], "diff": [["InsertOne"]]}[shape]
        touched = (T0 + timedelta(hours=1), "run-2") if shape == "upsert" else (T0, "run-1")
        assert seen() == {n: (T0, *touched, 2580) for n in (1, 2)}

        clock.now = T0 + timedelta(hours=2)  # a new run, item 1's price changed
        changed = make_item(1, "run-3")
        changed.price, changed.price_fen = "19.90", 1990
        store.write_items([changed, make_item(2, "run-3")])
        assert (
            store.item_commands()
            == {"upsert": [["UpdateOne"]], "diff": [["InsertOne"], ["UpdateOne"]]}[shape]
        )
        unchanged = (T0 + timedelta(hours=2), "run-3") if shape == "upsert" else (T0, "run-1")
        assert seen() == {1: (T0, T0 + timedelta(hours=2), "run-3", 1990), 2: (T0, *unchanged, 2580)}
    finally:
        store.close()


def test_both_shapes_store_the_same_documents_and_share_a_database(mongo_uri):
    first = [make_item(n) for n in range(1, 6)]
    first[0].extras = {"$set": {"a.b": [1, "二"]}, "when": T0}
    first[1].skus[0].props = {"颜色.分类": "黑"}
    second = [make_item(n, "run-2") for n in range(3, 8)]  # 3 stored, 2 new
    second[0].title = "新标题"  # one changed
    documents = {}
    for shape in ("diff", "upsert"):  # the upsert shape writes last, for the diff shape to read below
        clock = Clock()
        store = MongoStore(mongo_uri, write_shape=shape, clock=clock)
        store.open()
        try:
            db = store._database()
            db.items.delete_many({})
            store.write_items(first)
            clock.now = T0 + timedelta(hours=1)
            store.write_items(second)
            documents[shape] = {doc["_id"]: doc for doc in db.items.find()}
        finally:
            store.close()
    assert len(documents["diff"]) == len(documents["upsert"]) == 7
    for key, doc in documents["diff"].items():
        assert doc[HASH_FIELD] == content_hash(doc)
        first_seen = T0 if doc["num_iid"] <= 5 else T0 + timedelta(hours=1)
        # Items 4 and 5 came again unchanged: the diff shape left them as run-1 wrote them.
        last_run = "run-1" if doc["num_iid"] < 3 or (doc["num_iid"] in (4, 5)) else "run-2"
        assert (doc["first_seen"], doc["last_run_id"]) == (first_seen, last_run)
        upserted = documents["upsert"][key]
        assert upserted["last_run_id"] == ("run-1" if doc["num_iid"] < 3 else "run-2")
        moving = {"last_seen", "last_run_id"}
        assert {k: v for k, v in doc.items() if k not in moving} == {
            k: v for k, v in upserted.items() if k not in moving
        }

    # The diff shape reads the hashes the upsert shape stored: unchanged items cost no write.
    store = RecordingStore(mongo_uri, write_shape="diff", clock=Clock(T0 + timedelta(hours=2)))
    store.open()
    try:
        store.write_items([make_item(n, "run-3") for n in (4, 5)])
        assert store.item_commands() == [["InsertOne"]]  # refused by their _id: nothing written
    finally:
        store.close()


def priced(num_iid: int, round_: int) -> ShopItem:
    """Item ``num_iid`` as round ``round_`` of the crash writer sees it: half the items change price
    from one round to the next."""
    item = make_item(num_iid, f"run-{round_}")
    fen = 1000 + (round_ + num_iid) // 2
    item.price, item.price_fen = f"{fen / 100:.2f}", fen
    item.skus[0].price, item.skus[0].price_fen = item.price, fen
    return item


def crash_writer(uri: str, shape: str, count: str, batch: str, first_round: str) -> None:
    """The crash test's child: rewrites items 0..count-1 in batches, round after round, printing a
    line after each batch written, until it is killed."""
    store = MongoStore(uri, write_shape=shape)
    store.open()
    total, size = int(count), int(batch)
    for round_ in itertools.count(int(first_round)):
        for start in range(0, total, size):
            store.write_items([priced(n, round_) for n in range(start, min(start + size, total))])
            print(f"round {round_} wrote {start}", flush=True)


class Lines:
    """Lines of a child's stdout, each waited for at most until a deadline."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.process, self.fd, self.buffer = process, process.stdout.fileno(), b""

    def next(self, deadline: float) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise TimeoutError("the writer printed no line in time")
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    raise RuntimeError(f"the writer exited with {self.process.wait()}")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


# (shape, items, batch). On FerretDB every document an update modifies costs a scan of the collection
# (unchanged items too: their last_seen moves), about 35 ms at 1,000 items: these sizes keep each
# test near 40 s. The upsert shape gets fewer items, as each of its statements also scans to match.
# The production shape, small: FerretDB spends ~75 ms on each updated document (the writer changes
# half the prices each round). The diff shape's kills are in test_crawl_durability.py (whole crawls).
CRASHES = [("upsert", 120, 20)]


@pytest.mark.parametrize(("shape", "count", "batch"), CRASHES, ids=[c[0] for c in CRASHES])
def test_sigkill_mid_write_leaves_every_item_and_its_first_seen(mongo_uri, shape, count, batch):
    """A writer rewriting the same items with changing prices is SIGKILLed at 10 random moments; after
    each, every item written once is still there with the first_seen of its first write."""
    rng = random.Random()
    store = MongoStore(mongo_uri, write_shape=shape, batch_size=batch)
    store.open()
    try:
        for start in range(0, count, batch):
            store.write_items([priced(n, 0) for n in range(start, min(start + batch, count))])
        db = store._database()
        first_seen = {d["_id"]: d["first_seen"] for d in db.items.find({}, {"first_seen": 1})}
        assert len(first_seen) == count
        code = "import sys; from tests.test_store_mongo import crash_writer; crash_writer(*sys.argv[1:])"
        for kill in range(1, 11):
            args = [mongo_uri, shape, str(count), str(batch), str(kill * 1000)]
            child = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE)
            try:
                lines = Lines(child)
                deadline = time.monotonic() + 60
                for _ in range(1 + rng.randrange(2)):  # at least one batch written, maybe one more
                    lines.next(deadline)
                time.sleep(rng.uniform(0, 1.0))  # then a random moment inside a later batch
                assert child.poll() is None
                child.send_signal(signal.SIGKILL)
                assert child.wait(timeout=10) == -signal.SIGKILL
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait(timeout=10)
                assert child.stdout is not None
                child.stdout.close()
            after = {d["_id"]: d["first_seen"] for d in db.items.find({}, {"first_seen": 1})}
            assert len(after) == count, f"kill {kill}: {count - len(after)} items missing"
            assert after == first_seen, f"kill {kill}: first_seen changed"
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

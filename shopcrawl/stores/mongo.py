"""MongoDB store (``mongodb://`` / ``mongodb+srv://``): the SQLite store's semantics over pymongo.

Collections ``items``, ``observations``, ``tier_observations`` (1688 price tiers), ``runs`` and
``rejects`` hold the SQLite rows' fields as native BSON: SKUs are an embedded array, money is integer
fen plus the source string (never a float or Decimal128), times are BSON dates in UTC. A BSON date has
milliseconds and no offset, so the times a caller gives (item ``modified`` / ``list_time``, run
``started_at`` / ``finished_at``) also keep an exact ISO 8601 copy in ``<field>_iso``, which the read
helpers return; times the store makes are truncated to the millisecond. Keys from data are escaped
(``shopcrawl.stores.keys``); ``extras`` and reject payloads are stored as JSON would hold them, so reads
match the SQLite store's.

Writes are unordered ``bulk_write`` batches of at most ``batch_size`` operations. Items are written in
one of two shapes (``write_shape``), both atomic per document, so no interruption can leave a stored item
absent or change its ``first_seen``: ``upsert`` (one upsert per item; MongoDB) and ``diff`` (new items
inserted, unchanged ones touched by one ``update_many``, changed ones updated; chosen on FerretDB, whose
update statements are costly). Observations and rejects are inserts whose unique indexes make a second
insert a duplicate-key error that counts as stored. Transient errors are retried with backoff for up to
``retry_seconds``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import operator
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import unquote

import bson
from bson.errors import BSONError
from pymongo import InsertOne, MongoClient, UpdateMany, UpdateOne, monitoring
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from shopcrawl.items import PriceTier, Reject, ShopItem, Sku
from shopcrawl.stores import redact_uri
from shopcrawl.stores.base import ItemRun, RunRecord, RunTally, ShopTotals, StoreError, item_runs
from shopcrawl.stores.keys import escape_keys, unescape_keys
from shopcrawl.stores.outbox import DELIVERED, PENDING, AlertRecord
from shopcrawl.stores.sqlite import Observation, TierObservation

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
WriteOp = InsertOne[Doc] | UpdateOne | UpdateMany
_R = TypeVar("_R")
DEFAULT_DATABASE = "shopcrawl"
# (collection, index name, fields, unique): plain and unique compound indexes, which FerretDB 1.x has.
INDEXES: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("items", "items_key", ("platform", "seller_id", "num_iid"), True),
    ("items", "items_by_last_run", ("seller_id", "last_run_id"), False),
    ("observations", "observations_key", ("run_id", "platform", "seller_id", "num_iid", "sku_id"), True),
    ("observations", "observations_by_sku", ("platform", "seller_id", "num_iid", "sku_id", "run_id"), False),
    (
        "tier_observations",
        "tier_observations_key",
        ("run_id", "platform", "seller_id", "num_iid", "start_quantity"),
        True,
    ),
    ("runs", "runs_key", ("run_id",), True),
    ("runs", "runs_by_seller", ("seller_id", "started_at"), False),
    # An unknown num_iid is stored as null, and null equals null in a unique index (COALESCE in SQLite).
    ("rejects", "rejects_key", ("run_id", "platform", "seller_id", "num_iid", "reason"), True),
)
_DUPLICATE_KEY = 11000
# FerretDB 1.24 (SQLite) never answers an update command of about 100 statements or more (measured: 80
# answered, 100 hung with the server idle), so there update statements go at most this many a command.
FERRETDB_UPDATES_PER_COMMAND = 50
# Server codes of a write refused because the server is going away or changing role: worth a retry.
_TRANSIENT_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
_MAX_ATTEMPTS = 1000  # the retry deadline ends the loop long before this
_UNREADABLE_RETRIES = 5
_ITEM_TIMES = ("modified", "list_time")
WRITE_SHAPES = ("auto", "upsert", "diff")
# A URI query option naming the write shape (for SHOPCRAWL_STORE); removed before pymongo sees the URI.
SHAPE_OPTION = "shopcrawlWriteShape"
HASH_FIELD = "content_hash"
# Item document fields a write sets every time, whatever the content: not part of the content hash.
_UNHASHED = frozenset({"last_seen", "last_run_id", "detail_at"})
# Item document fields the lifecycle sets (apply_lifecycle), never an item write: not hashed either.
_LIFECYCLE = frozenset({"status", "delisted_at"})
_ITEM_PLAIN = [
    f.name
    for f in fields(ShopItem)
    if f.name not in {"run_id", "skus", "extras", "price_tiers", *_ITEM_TIMES}
]
_RUN_PLAIN = [f.name for f in fields(RunRecord) if f.name not in {"api_calls", "started_at", "finished_at"}]
_REJECT_PLAIN = [f.name for f in fields(Reject) if f.name != "payload"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _times(name: str, value: datetime | None, *, utc: bool = False) -> Doc:
    """``{name: BSON date, name_iso: exact ISO text}``; the text keeps the offset unless ``utc``."""
    if value is None:
        return {name: None, f"{name}_iso": None}
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the store needs timezone-aware times")
    in_utc = value.astimezone(UTC)
    return {name: in_utc, f"{name}_iso": (in_utc if utc else value).isoformat(timespec="microseconds")}


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _fen(value: object, what: str) -> int:
    if type(value) is not int:
        raise StoreError(f"{what}: price_fen must be an integer number of fen, not {value!r}")
    return value


def _json_default(value: object) -> str:
    isoformat = getattr(value, "isoformat", None)  # datetime, date, time: as the SQLite store does
    return str(isoformat()) if callable(isoformat) else str(value)


def _as_json(value: object) -> Any:
    """``value`` as the SQLite store reads it back from its JSON column."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=_json_default))


def item_id(item: ShopItem) -> str:
    """An item document's ``_id``: its natural key as a JSON array, ``["taobao","s1",123]``."""
    return _key(item.platform, item.seller_id, item.num_iid)


def _key(platform: str, seller_id: str, num_iid: int) -> str:
    return json.dumps([platform, seller_id, num_iid], ensure_ascii=False, separators=(",", ":"))


def content_hash(doc: Mapping[str, Any]) -> str:
    """sha256 of an item document's BSON without ``_id``, ``first_seen``, ``last_seen``, ``last_run_id``
    and the hash itself: equal hashes, equal stored content (field order included)."""
    skip = _UNHASHED | _LIFECYCLE | {"_id", "first_seen", HASH_FIELD}
    return hashlib.sha256(bson.encode({k: v for k, v in doc.items() if k not in skip})).hexdigest()


def _split_shape(uri: str) -> tuple[str, str | None]:
    """``uri`` without the ``shopcrawlWriteShape`` query option, and that option's value if given."""
    base, sep, query = uri.partition("?")
    if not sep:
        return uri, None
    kept, shape = [], None
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name.lower() == SHAPE_OPTION.lower():
            shape = unquote(value)
        elif pair:
            kept.append(pair)
    return (base + ("?" + "&".join(kept) if kept else "")), shape


def _item_docs(item: ShopItem, now: datetime) -> tuple[Doc, list[Doc], list[Doc], int]:
    """The item document (no first_seen), its observations, its price tier observations, and the
    number of keys escaped."""
    name = f"item {item.platform}/{item.seller_id}/{item.num_iid}"
    if not item.run_id:
        raise ValueError(f"{name} has no run_id")
    doc: Doc = {f: getattr(item, f) for f in _ITEM_PLAIN} | {"price_fen": _fen(item.price_fen, name)}
    doc |= _times("modified", item.modified) | _times("list_time", item.list_time)
    doc["extras"], escaped = escape_keys(_as_json(item.extras))
    doc |= {"skus": [], "last_seen": now, "last_run_id": item.run_id}
    doc["detail_at"] = _day(now if item.detail_at is None else item.detail_at)
    doc["price_tiers"] = [
        asdict(tier) | {"price_fen": _fen(tier.price_fen, f"{name} tier {tier.start_quantity}")}
        for tier in item.price_tiers
    ]
    for sku in item.skus:
        sub: Doc = {f.name: getattr(sku, f.name) for f in fields(Sku)}
        sub["price_fen"] = _fen(sku.price_fen, f"{name} SKU {sku.sku_id}")
        sub["props"], count = escape_keys(dict(sku.props))
        doc["skus"].append(sub)
        escaped += count
    base: Doc = {"run_id": item.run_id, "platform": item.platform, "seller_id": item.seller_id}
    base |= {"num_iid": item.num_iid, "sold_quantity": item.sold_quantity, "observed_at": now}
    prices = [(s.sku_id, s.price, s.price_fen, s.quantity) for s in item.skus]
    observed = [
        base | {"sku_id": sku_id, "price": price, "price_fen": fen, "quantity": quantity}
        for sku_id, price, fen, quantity in prices or [(0, item.price, item.price_fen, item.num)]
    ]
    tiers = [
        base
        | {"start_quantity": tier["start_quantity"], "price": tier["price"], "price_fen": tier["price_fen"]}
        for tier in doc["price_tiers"]
    ]
    for tier in tiers:
        del tier["sold_quantity"]
    return doc, observed, tiers, escaped


def _by_ids(collection: Collection[Doc], ids: list[str], projection: Doc | None = None) -> list[Doc]:
    """The documents among ``ids``, in one ``find`` whose one batch is larger than the answer (no
    getMore round trip). On FerretDB 1.x this decodes every document of the collection (only a
    filter of exactly one ``_id`` is pushed down, and even that scans its SQLite table), so the diff
    shape reads only the items an insert found already stored."""
    return list(collection.find({"_id": {"$in": ids}}, projection, batch_size=len(ids) + 1))


def _day(moment: datetime) -> datetime:
    """``detail_at`` as MongoDB keeps it: the UTC day the detail was fetched (its midnight). So a detail
    fetched again the same day changes no document (FerretDB's updates are costly) and both write
    shapes store the same; an incremental crawl's age check errs towards fetching (by under a day)."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _stale(stored: datetime | None, fetched: datetime) -> bool:
    """Whether an unchanged item's stored detail_at is to move to the new fetch's day."""
    return stored is None or fetched > stored


def _on_insert(now: datetime) -> Doc:
    """The fields a new item document starts with and writes of it never change."""
    return {"first_seen": now, "status": "active"}


def _item_from_doc(doc: Mapping[str, Any]) -> ShopItem:
    skus = [Sku(**{f.name: s[f.name] for f in fields(Sku) if f.name in s}) for s in doc["skus"]]
    for sku in skus:
        sku.props = unescape_keys(sku.props)
    return ShopItem(
        **{f: doc[f] for f in _ITEM_PLAIN if f in doc},  # fields added since it was written: defaults
        price_tiers=[PriceTier(**tier) for tier in doc.get("price_tiers", [])],
        modified=datetime.fromisoformat(doc["modified_iso"]),
        list_time=_dt(doc["list_time_iso"]),
        skus=skus,
        run_id=doc["last_run_id"],
        extras=unescape_keys(doc["extras"]),
    )


def _run_doc(run: RunRecord) -> Doc:
    doc: Doc = {f: getattr(run, f) for f in _RUN_PLAIN}
    doc |= _times("started_at", run.started_at, utc=True) | _times("finished_at", run.finished_at, utc=True)
    # Pairs, not a dict: method names hold dots, and an array of pairs is queryable as it is.
    return doc | {"api_calls": [{"method": m, "calls": n} for m, n in run.api_calls.items()]}


def _run_from_doc(doc: Mapping[str, Any]) -> RunRecord:
    times = {name: _dt(doc[f"{name}_iso"]) for name in ("started_at", "finished_at")}
    calls = {pair["method"]: pair["calls"] for pair in doc["api_calls"]}
    plain = {f: doc[f] for f in _RUN_PLAIN if f in doc}  # fields added since a document was written: defaults
    return RunRecord(**plain, **times, api_calls=calls)  # type: ignore[arg-type]


def _write_errors(details: Mapping[str, Any]) -> tuple[list[int], list[Doc]]:
    """A BulkWriteError's duplicate-key operation indexes, and every other error."""
    duplicates, others = [], list(details.get("writeConcernErrors") or [])
    for error in details.get("writeErrors") or []:
        if error.get("code") == _DUPLICATE_KEY:
            duplicates.append(int(error["index"]))
        else:
            others.append(error)
    return duplicates, others


def _is_transient(exc: Exception, errors: Sequence[Mapping[str, Any]] = ()) -> bool:
    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NetworkTimeout, NotPrimaryError, selection
        return True
    if isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError"):
        return True
    codes = [e.get("code") for e in errors] or [getattr(exc, "code", None)]
    return isinstance(exc, OperationFailure) and all(code in _TRANSIENT_CODES for code in codes)


class _WriteCounter(monitoring.CommandListener):
    """Counts the commands a write sends (the find of existing items too): retries and driver-split
    batches included."""

    def __init__(self) -> None:
        self.sent = 0
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update", "delete", "find", "getMore"):
            with self._lock:
                self.sent += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class MongoStore:
    """The ``Store`` for ``mongodb://[user:password@]host[:port][/database][?options]`` (database
    ``shopcrawl`` when the URI names none). Thread-safe: one pymongo client.

    ``round_trips`` counts the write commands sent; ``escaped_keys`` the data keys escaped in what
    was written. Timeouts given in the URI win over the constructor's.

    ``write_shape`` is how item batches are written: ``"upsert"``, ``"diff"``, or ``"auto"`` (the
    default, also settable as the URI option ``shopcrawlWriteShape``): ``diff`` when ``buildInfo`` says
    the server is FerretDB, ``upsert`` otherwise. After ``open()`` the attribute holds the shape in use.
    """

    def __init__(
        self,
        uri: str,
        *,
        batch_size: int = 10_000,
        retry_seconds: float = 60.0,
        server_selection_timeout: float = 5.0,
        socket_timeout: float = 120.0,
        clock: Callable[[], datetime] = _utc_now,
        write_shape: str = "auto",
    ) -> None:
        if batch_size < 1 or retry_seconds < 0:
            raise ValueError("MongoStore: batch_size must be at least 1 and retry_seconds not negative")
        self.name = redact_uri(uri)
        self.batch_size = batch_size
        uri, from_uri = _split_shape(uri)
        if write_shape == "auto" and from_uri is not None:
            write_shape = from_uri
        if write_shape not in WRITE_SHAPES:
            shapes = ", ".join(WRITE_SHAPES)
            raise ValueError(f"MongoStore: write shape {write_shape!r} is not one of {shapes}")
        self._shape_wanted = write_shape
        # "upsert" or "diff" once open; until then what was asked for.
        self.write_shape = write_shape
        self._uri = uri
        password = uri.partition("://")[2].rpartition("@")[0].partition(":")[2]
        self._secrets = sorted({password, unquote(password)} - {""}, key=len, reverse=True)
        self._retry_seconds = retry_seconds
        self._timeouts: Doc = {
            "serverSelectionTimeoutMS": round(server_selection_timeout * 1000),
            "socketTimeoutMS": round(socket_timeout * 1000),
        }
        self._clock = clock
        self._lock = threading.Lock()
        self._counter = _WriteCounter()
        self.escaped_keys = 0
        self._client: MongoClient[Doc] | None = None
        self._db: Database[Doc] | None = None
        self._updates_per_command = batch_size

    @property
    def round_trips(self) -> int:
        return self._counter.sent

    def open(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            given = {pair.partition("=")[0].lower() for pair in self._uri.partition("?")[2].split("&")}
            options = {k: v for k, v in self._timeouts.items() if k.lower() not in given}
            client: MongoClient[Doc] | None = None
            try:
                client = MongoClient(
                    self._uri, tz_aware=True, tzinfo=UTC, event_listeners=[self._counter], **options
                )
                db = client.get_default_database(DEFAULT_DATABASE)
                db.command("ping")
                for collection, index, keys, unique in INDEXES:
                    db[collection].create_index([(k, 1) for k in keys], name=index, unique=unique)
                ferretdb, version = self._server_kind(db)
                shape, why = self._pick_shape(ferretdb, version)
            except (PyMongoError, ValueError) as exc:
                if client is not None:
                    client.close()
                leaks = any(secret in str(exc) for secret in self._secrets)
                raise self._error("cannot open the store", exc) from (None if leaks else exc)
            self._client, self._db, self.write_shape = client, db, shape
            self._updates_per_command = self.batch_size
            if ferretdb:
                self._updates_per_command = min(self.batch_size, FERRETDB_UPDATES_PER_COMMAND)
        logger.info("Opened MongoDB store %s (database %s)", self.name, db.name)
        logger.info("MongoDB store %s: items are written in the %r shape: %s", self.name, shape, why)

    def _server_kind(self, db: Database[Doc]) -> tuple[bool, str]:
        """(FerretDB?, version text) from ``buildInfo``: FerretDB's reply carries ``ferretdb*`` fields
        (1.x: ``ferretdbVersion``, ``ferretdbFeatures``)."""
        try:
            info = db.client.admin.command("buildInfo")
        except OperationFailure as exc:  # refused (a restricted user): MongoDB, not FerretDB
            return False, f"unknown (buildInfo refused: {self._reason(exc)})"
        ferret = sorted(key for key in info if key.lower().startswith("ferretdb"))
        if ferret:
            return True, f"FerretDB {info.get('ferretdbVersion', '?')} (buildInfo has {', '.join(ferret)})"
        return False, f"MongoDB {info.get('version', '?')}"

    def _pick_shape(self, ferretdb: bool, version: str) -> tuple[str, str]:
        """The write shape to use and why: the one asked for, else ``diff`` on FerretDB."""
        if self._shape_wanted != "auto":
            return self._shape_wanted, f"asked for; the server is {version}"
        if ferretdb:
            return "diff", (
                f"the server is {version}, whose upserts cost a collection scan each: new items"
                " are inserted, unchanged ones share one update_many"
            )
        return "upsert", f"the server is {version}"

    def start_run(self, run: RunRecord) -> None:
        self._bulk("runs", [InsertOne(_run_doc(run))], f"start run {run.run_id}")

    def write_items(self, items: Sequence[ShopItem]) -> None:
        """Write the batch's item documents and insert its observations.

        Every command is atomic per document and no stored item is ever deleted, so an interruption
        between any two (a crash, a kill, a lost connection) leaves every stored item present with its
        ``first_seen``; writing the batch again (the pipeline keeps it) completes it. Each document holds
        ``content_hash`` (``content_hash()``), whichever the shape, so the shapes can share a database.

        ``upsert``: one unordered ``bulk_write`` of ``UpdateOne(upsert=True)``: ``$set`` every field but
        ``first_seen``, ``$setOnInsert`` ``first_seen``. Two commands per ``batch_size`` items.

        ``diff`` (for FerretDB): an ``insert`` of every item (stores the new ones; a duplicate key names
        each one already stored), a ``find`` of those items' stored hashes, an upsert of each changed
        one, nothing for the unchanged ones (their ``last_seen`` and ``last_run_id`` stay those of the
        last run that changed them), then the observations. A first crawl sends two commands per
        ``batch_size`` items and reads nothing."""
        now = self._now()
        docs: dict[str, Doc] = {}
        observation_ops: list[WriteOp] = []
        tier_ops: list[WriteOp] = []
        escaped = 0
        for item in items:  # every item is checked before anything is sent
            doc, observed, tiers, count = _item_docs(item, now)
            docs[item_id(item)] = doc  # the same item twice in a batch: the later one wins
            observation_ops += [InsertOne(obs) for obs in observed]
            tier_ops += [InsertOne(tier) for tier in tiers]
            escaped += count
        if not docs:
            return
        what = f"write {len(docs)} items"
        try:
            for doc in docs.values():
                doc[HASH_FIELD] = content_hash(doc)
        except (BSONError, OverflowError) as exc:  # a value BSON cannot hold
            raise self._error(f"{what} failed", exc) from exc
        self._database()  # not open: StoreError before the shape is looked at
        ids = list(docs)
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            if self.write_shape == "diff":
                self._write_diff(chunk, docs, now, what)
            else:
                self._upsert(chunk, docs, now, what)
        self._bulk("observations", observation_ops, what)
        if tier_ops:
            self._bulk("tier_observations", tier_ops, what)
        self._count_escaped(escaped)

    def _upsert(self, ids: list[str], docs: Mapping[str, Doc], now: datetime, what: str) -> None:
        """One upsert per item; a duplicate key (two writers inserting at once) is sent once more."""
        ops: list[WriteOp] = [
            UpdateOne({"_id": i}, {"$set": docs[i], "$setOnInsert": _on_insert(now)}, upsert=True)
            for i in ids
        ]
        self._bulk("items", ops, what, resend_duplicates=True, per_command=self._updates_per_command)

    def _write_diff(self, ids: list[str], docs: Mapping[str, Doc], now: datetime, what: str) -> None:
        # Insert every item first: the new ones are stored by it, and a duplicate key names each item
        # already stored (or stored by another writer meanwhile). Only those are read back, so a
        # first crawl reads nothing.
        inserts: list[WriteOp] = [InsertOne({"_id": i, **docs[i], **_on_insert(now)}) for i in ids]
        present = [ids[n] for n in self._send("items", inserts, what)[0]]
        if not present:
            return
        stored = self._stored_hashes(present, what)
        changed = [i for i in present if stored.get(i, (None, None))[0] != docs[i][HASH_FIELD]]
        unchanged = [i for i in present if i in stored and stored[i][0] == docs[i][HASH_FIELD]]
        refreshed = [i for i in unchanged if _stale(stored[i][1], docs[i]["detail_at"])]
        # Unchanged items are not written at all: FerretDB spends ~75 ms per updated document, even
        # in one update_many, which made an identical 5,000-item re-crawl take minutes. Their
        # last_seen / last_run_id stay those of the last run that changed them; the run's
        # observations record that they were seen.
        if changed:
            self._upsert(changed, docs, now, what)
        if refreshed:  # fetched again on a later day and nothing new: only detail_at moves
            update = UpdateMany({"_id": {"$in": refreshed}}, {"$set": {"detail_at": _day(now)}})
            self._bulk("items", [update], what)

    def write_rejects(self, rejects: Sequence[Reject]) -> None:
        now, ops, escaped = self._now(), list[WriteOp](), 0
        for r in rejects:
            payload, count = escape_keys(_as_json(r.payload))
            doc: Doc = {f: getattr(r, f) for f in _REJECT_PLAIN}
            ops.append(InsertOne(doc | {"payload": payload, "created_at": now}))
            escaped += count
        if ops:
            self._bulk("rejects", ops, f"write {len(ops)} rejects")
            self._count_escaped(escaped)

    def finish_run(self, run: RunRecord) -> None:
        """The final record (upserted: a distributed run's closing worker may not have started it); a
        complete run's shop totals are computed from its observations and kept in ``totals``."""
        doc = _run_doc(run)
        doc["totals"] = None
        if run.status == "complete":
            items = self.items_of_runs(run.platform, run.seller_id, [run.run_id]).get(run.run_id, {})
            doc["totals"] = ShopTotals.of(items).as_json()
        key = {"run_id": doc.pop("run_id")}
        started = {k: doc.pop(k) for k in ("started_at", "started_at_iso", "owner", "heartbeat_at")}
        update = UpdateOne(key, {"$set": doc, "$setOnInsert": started}, upsert=True)
        self._bulk("runs", [update], f"finish run {run.run_id}", resend_duplicates=True)

    def heartbeat(self, run_id: str, at: datetime) -> None:
        update = UpdateOne({"run_id": run_id, "status": "running"}, {"$set": {"heartbeat_at": at}})
        self._bulk("runs", [update], f"heartbeat run {run_id}")

    def running_runs(self, platform: str, seller_id: str) -> list[RunRecord]:
        where = {"platform": platform, "seller_id": seller_id, "status": "running"}
        return [_run_from_doc(doc) for doc in self._find("runs", where, ("started_at",))]

    def runs_for(self, platform: str, seller_id: str) -> list[RunRecord]:
        """Every run of this shop, oldest first."""
        where = {"platform": platform, "seller_id": seller_id}
        return [_run_from_doc(doc) for doc in self._find("runs", where, ("started_at", "run_id"))]

    def run_totals(self, platform: str, seller_id: str) -> dict[str, ShopTotals]:
        """The stored shop totals of this shop's runs, by run_id (runs without them are left out)."""
        where: Doc = {"platform": platform, "seller_id": seller_id}
        docs = self._find("runs", where, (), fields={"run_id": 1, "totals": 1})
        return {d["run_id"]: ShopTotals.from_json(d["totals"]) for d in docs if d.get("totals") is not None}

    def items_of_runs(
        self, platform: str, seller_id: str, run_ids: Sequence[str]
    ) -> dict[str, dict[int, ItemRun]]:
        """Per run among these, per item of this shop it observed: lowest price, total stock, sales
        count (one find, by the observations' key; ordered here rather than by the server)."""
        where: Doc = {"run_id": {"$in": list(run_ids)}, "platform": platform, "seller_id": seller_id}
        fields = {"_id": 0, "run_id": 1, "num_iid": 1, "sku_id": 1, "price_fen": 1, "quantity": 1}
        docs = self._find("observations", where, (), fields=fields | {"sold_quantity": 1})
        docs.sort(key=lambda d: (d["run_id"], d["num_iid"], d["sku_id"]))
        return {
            run_id: item_runs((d["num_iid"], d["price_fen"], d["quantity"], d["sold_quantity"]) for d in rows)
            for run_id, rows in itertools.groupby(docs, key=operator.itemgetter("run_id"))
        }

    def item_ids(self, platform: str, seller_id: str) -> list[int]:
        """Every item of this shop the store holds (any status), in num_iid order."""
        where: Doc = {"platform": platform, "seller_id": seller_id}
        docs = self._find("items", where, (), fields={"_id": 0, "num_iid": 1})
        return sorted(int(d["num_iid"]) for d in docs)

    def runs_of_items(self, platform: str, seller_id: str, num_iids: Sequence[int]) -> dict[int, set[str]]:
        """Per item among these of this shop, the runs that observed it: one find per 1,000 items, by
        the per-item index (which holds the run_id)."""
        found: dict[int, set[str]] = {}
        ids = list(num_iids)
        for start in range(0, len(ids), 1000):
            where: Doc = {"platform": platform, "seller_id": seller_id}
            where["num_iid"] = {"$in": ids[start : start + 1000]}
            for doc in self._find("observations", where, (), fields={"_id": 0, "num_iid": 1, "run_id": 1}):
                found.setdefault(int(doc["num_iid"]), set()).add(doc["run_id"])
        return found

    def observations_of_items(
        self, platform: str, seller_id: str, num_iids: Sequence[int]
    ) -> list[Observation]:
        """Every run's observations of these few items of this shop (one find, by the per-item index):
        the price history of the items a report charts."""
        if not num_iids:
            return []
        where: Doc = {"platform": platform, "seller_id": seller_id, "num_iid": {"$in": list(num_iids)}}
        return [
            Observation(**{f: doc[f] for f in Observation._fields})
            for doc in self._find("observations", where, ())
        ]

    def observations_at(
        self, platform: str, seller_id: str, keys: Sequence[tuple[int, str]]
    ) -> list[Observation]:
        """The observations of these (num_iid, run_id) pairs of this shop, every SKU's: one find per
        10,000 pairs (an ``$or`` of one ``run_id`` + ``num_iid $in`` clause per run)."""
        found: list[Observation] = []
        for start in range(0, len(keys), 10_000):  # bounds the query document's size
            by_run: dict[str, list[int]] = {}
            for num_iid, run_id in keys[start : start + 10_000]:
                by_run.setdefault(run_id, []).append(num_iid)
            where: Doc = {"platform": platform, "seller_id": seller_id}
            where["$or"] = [{"run_id": run_id, "num_iid": {"$in": ids}} for run_id, ids in by_run.items()]
            docs = self._find("observations", where, ())
            found += [Observation(**{f: doc[f] for f in Observation._fields}) for doc in docs]
        return found

    def observed_in(
        self, platform: str, seller_id: str, num_iids: Sequence[int], run_ids: Sequence[str]
    ) -> set[int]:
        """Which of these items any of these runs observed (by the per-item index: the few asked about)."""
        if not num_iids or not run_ids:
            return set()
        where: Doc = {"platform": platform, "seller_id": seller_id, "num_iid": {"$in": list(num_iids)}}
        where["run_id"] = {"$in": list(run_ids)}
        return {int(doc["num_iid"]) for doc in self._find("observations", where, ())}

    def titles_of(self, platform: str, seller_id: str, num_iids: Sequence[int]) -> dict[int, str]:
        if not num_iids:
            return {}
        where: Doc = {"platform": platform, "seller_id": seller_id, "num_iid": {"$in": list(num_iids)}}
        return {int(doc["num_iid"]): str(doc["title"]) for doc in self._find("items", where, ())}

    def mark_abandoned(self, run_id: str, reason: str, at: datetime) -> bool:
        changes: Doc = {"status": "abandoned", "reason": reason} | _times("finished_at", at, utc=True)
        result = self._read(
            lambda db: db.runs.update_one({"run_id": run_id, "status": "running"}, {"$set": changes})
        )
        return result.modified_count > 0

    def items_by_id(self, platform: str, seller_id: str, ids: Sequence[int]) -> dict[int, ShopItem]:
        """The stored items among ``ids`` of this shop, by num_iid: one ``find`` by ``_id``."""
        if not ids:
            return {}
        keys = [_key(platform, seller_id, num_iid) for num_iid in ids]
        docs = self._read(lambda db: _by_ids(db.items, keys))
        return {item.num_iid: item for item in map(_item_from_doc, docs)}

    def apply_lifecycle(self, run: RunRecord) -> tuple[int, int]:
        """See :meth:`SqliteStore.apply_lifecycle`: the same transitions, two ``update_many``."""
        shop: Doc = {"platform": run.platform, "seller_id": run.seller_id}
        now = run.finished_at or self._now()

        def apply(db: Database[Doc]) -> tuple[int, int]:
            seen = set(db.observations.distinct("num_iid", {"run_id": run.run_id}))
            refused = db.rejects.find(
                {"run_id": run.run_id, "num_iid": {"$ne": None}}, {"num_iid": 1, "reason": 1}
            )
            seen |= {d["num_iid"] for d in refused if RunTally.kind(d["reason"]) == 1}
            ids = sorted(seen)
            relisted = db.items.update_many(
                shop | {"status": "delisted", "num_iid": {"$in": ids}}, {"$set": {"status": "relisted"}}
            ).modified_count
            delisted = 0
            if run.status == "complete":
                delisted = db.items.update_many(
                    shop | {"status": {"$ne": "delisted"}, "num_iid": {"$nin": ids}},
                    {"$set": {"status": "delisted", "delisted_at": now}},
                ).modified_count
            return delisted, relisted

        return self._read(apply)

    def item_status(self, platform: str, seller_id: str) -> dict[int, tuple[str, datetime | None]]:
        """num_iid -> (status, delisted_at) of the shop's items, for tests and reports."""
        docs = self._find("items", {"platform": platform, "seller_id": seller_id}, ())
        return {d["num_iid"]: (d.get("status", "active"), d.get("delisted_at")) for d in docs}

    def tally(self, run_id: str) -> RunTally:
        """Two reads: the count of distinct items observed, and the run's item rejects."""
        pipeline: list[Doc] = [{"$match": {"run_id": run_id}}, {"$group": {"_id": "$num_iid"}}]
        pipeline.append({"$count": "n"})
        counted = self._read(lambda db: list(db.observations.aggregate(pipeline)))
        stored = int(counted[0]["n"]) if counted else 0
        where = {"run_id": run_id, "num_iid": {"$ne": None}}
        kinds: dict[int, int] = {}
        for doc in self._read(lambda db: list(db.rejects.find(where, {"num_iid": 1, "reason": 1}))):
            kind = RunTally.kind(doc["reason"])
            kinds[doc["num_iid"]] = min(kind, kinds.get(doc["num_iid"], kind))
        if kinds:
            seen = {"run_id": run_id, "num_iid": {"$in": list(kinds)}}
            for num_iid in self._read(lambda db: db.observations.distinct("num_iid", seen)):
                kinds.pop(num_iid, None)
        ranks = list(kinds.values())
        return RunTally(stored, ranks.count(1), ranks.count(2), ranks.count(3))

    def close(self) -> None:
        with self._lock:
            client, self._client, self._db = self._client, None, None
        if client is not None:
            client.close()
            logger.info("Closed MongoDB store %s", self.name)

    # Pure reads, for tests and reports: the SqliteStore's answers.

    def count_items(self, platform: str | None = None, seller_id: str | None = None) -> int:
        where = {k: v for k, v in (("platform", platform), ("seller_id", seller_id)) if v is not None}
        return self._read(lambda db: db.items.count_documents(where))

    def iter_items(self, seller_id: str, page_size: int = 500) -> Iterator[ShopItem]:
        """The seller's items ordered by (platform, num_iid), read a page at a time."""
        where: Doc = {"seller_id": seller_id}
        while docs := self._find("items", where, ("platform", "num_iid"), page_size):
            yield from map(_item_from_doc, docs)
            platform, num_iid = docs[-1]["platform"], docs[-1]["num_iid"]
            after = [{"platform": {"$gt": platform}}, {"platform": platform, "num_iid": {"$gt": num_iid}}]
            where = {"seller_id": seller_id, "$or": after}

    def get_run(self, run_id: str) -> RunRecord | None:
        docs = self._find("runs", {"run_id": run_id}, (), 1)
        return _run_from_doc(docs[0]) if docs else None

    def observations_for_run(self, run_id: str) -> list[Observation]:
        docs = self._find("observations", {"run_id": run_id}, ("platform", "seller_id", "num_iid", "sku_id"))
        return [Observation(**{f: doc[f] for f in Observation._fields}) for doc in docs]

    def tier_observations_for_run(self, run_id: str) -> list[TierObservation]:
        order = ("platform", "seller_id", "num_iid", "start_quantity")
        docs = self._find("tier_observations", {"run_id": run_id}, order)
        return [TierObservation(**{f: doc[f] for f in TierObservation._fields}) for doc in docs]

    def rejects_for_run(self, run_id: str) -> list[Reject]:
        """In insertion order (the driver's ObjectIds), as the SQLite store's rowid order."""
        docs = self._find("rejects", {"run_id": run_id}, ("_id",))
        return [Reject(**{f: d[f] for f in _REJECT_PLAIN}, payload=unescape_keys(d["payload"])) for d in docs]

    # Internals.

    def _bulk(
        self,
        name: str,
        ops: list[WriteOp],
        what: str,
        *,
        resend_duplicates: bool = False,
        per_command: int | None = None,
    ) -> None:
        """Send ``ops`` in unordered batches. A duplicate key means another writer (or an earlier try)
        stored the document first: an insert is then done. ``resend_duplicates`` sends such upserts
        once more, now that the document exists, so their ``$set`` is applied; if one collides again,
        the colliding document is not the one its filter names: StoreError. ``per_command`` (default
        ``batch_size``) caps the operations a command holds."""
        size = per_command or self.batch_size
        for start in range(0, len(ops), size):
            batch = ops[start : start + size]
            duplicates = self._send(name, batch, what)[0]
            if duplicates and resend_duplicates:
                logger.debug("MongoDB store %s: %s: resending %d upserts", self.name, what, len(duplicates))
                if self._send(name, [batch[i] for i in duplicates], what)[0]:  # not a race: another document
                    reason = "an upsert collides on a unique index with a document of another _id"
                    raise StoreError(f"MongoDB store {self.name}: {what} failed: {reason}")

    def _send(self, name: str, batch: list[WriteOp], what: str) -> tuple[list[int], int]:
        """One ``bulk_write``, retried while the failure is transient and time is left; returns the
        indexes of the operations that hit a duplicate key, and the number of documents the updates
        matched. Any other failure raises StoreError."""
        deadline, unreadable = time.monotonic() + self._retry_seconds, 0
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                result = self._database()[name].bulk_write(batch, ordered=False)
                return [], result.matched_count
            except KeyError as exc:
                # FerretDB 1.x answers an update command with a refused write (a raced upsert's duplicate
                # key) without "nModified", which pymongo cannot read. The batch is idempotent: resend.
                unreadable += 1
                if unreadable > _UNREADABLE_RETRIES:
                    raise self._error(f"{what} failed", exc) from exc
                error: Exception = exc
            except BulkWriteError as exc:
                duplicates, others = _write_errors(exc.details)
                if not others:
                    return duplicates, int(exc.details.get("nMatched") or 0)
                if not _is_transient(exc, others):
                    raise self._error(f"{what} failed", exc) from exc
                error = exc
            except (PyMongoError, BSONError, OverflowError) as exc:  # BSON: a value MongoDB cannot hold
                if not _is_transient(exc):
                    raise self._error(f"{what} failed", exc) from exc
                error = exc
            self._back_off(what, error, attempt, deadline)
        raise StoreError(f"MongoDB store {self.name}: {what} failed after {_MAX_ATTEMPTS} attempts")

    def _back_off(self, what: str, error: Exception, attempt: int, deadline: float) -> None:
        """Sleep before the next attempt, or raise StoreError once the retry time is spent."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._error(f"{what} failed after {attempt} attempts", error) from error
        delay = min(0.1 * 2 ** min(attempt, 10), 5.0, left) * (0.5 + random.random() / 2)  # jitter
        logger.warning(
            "MongoDB store %s: %s: %s; retry %d in %.2fs",
            self.name,
            what,
            self._reason(error),
            attempt,
            delay,
        )
        time.sleep(delay)

    def _stored_hashes(self, ids: list[str], what: str) -> dict[str, tuple[str | None, datetime | None]]:
        """(``content_hash``, ``detail_at``) of the items among ``ids`` already stored (None if a document
        has none, as one written before they were); transient errors are retried."""
        deadline = time.monotonic() + self._retry_seconds
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                docs = _by_ids(self._database().items, ids, {HASH_FIELD: 1, "detail_at": 1})
                return {d["_id"]: (d.get(HASH_FIELD), d.get("detail_at")) for d in docs}
            except PyMongoError as exc:
                if not _is_transient(exc):
                    raise self._error(f"{what} failed", exc) from exc
                self._back_off(what, exc, attempt, deadline)
        raise StoreError(f"MongoDB store {self.name}: {what} failed after {_MAX_ATTEMPTS} attempts")

    def _find(
        self, name: str, where: Doc, order: Sequence[str], limit: int = 0, fields: Doc | None = None
    ) -> list[Doc]:
        sort = [(k, 1) for k in order] or None
        return self._read(lambda db: list(db[name].find(where, fields, sort=sort, limit=limit)))

    def _read(self, query: Callable[[Database[Doc]], _R]) -> _R:
        try:
            return query(self._database())
        except PyMongoError as exc:
            raise self._error("read failed", exc) from exc

    def _database(self) -> Database[Doc]:
        db = self._db
        if db is None:
            raise StoreError(f"MongoDB store {self.name} is not open")
        return db

    def _now(self) -> datetime:
        now = self._clock().astimezone(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)  # what a BSON date holds

    def _count_escaped(self, count: int) -> None:
        with self._lock:
            self.escaped_keys += count

    def _reason(self, exc: BaseException) -> str:
        """A one-line reason without the password or pymongo's topology dump."""
        if isinstance(exc, BulkWriteError):
            errors = _write_errors(exc.details)[1]
            first = errors[0] if errors else {}
            text = f"{len(errors)} write errors, first: code {first.get('code')}: {first.get('errmsg')}"
        elif isinstance(exc, KeyError):
            text = f"the server refused a write; its reply lacks {exc}"
        else:
            text = str(exc).split(", Timeout:")[0].split(", full error:")[0]
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:500]

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"MongoDB store {self.name}: {what}: {self._reason(exc)}")

    # The alerts outbox (see shopcrawl.stores.outbox): collection ``alerts``, ``_id`` = the change's key.

    def queue_alerts(self, records: Sequence[AlertRecord]) -> list[AlertRecord]:
        """Write ``records`` as pending, skipping any whose key or content key is already in the
        outbox (pending or delivered); returns those written."""
        if not records:
            return []

        def write(db: Database[Doc]) -> list[AlertRecord]:
            _alert_indexes(db)
            try:
                db.alerts.insert_many([_alert_doc(record) for record in records], ordered=False)
            except BulkWriteError as exc:
                refused, others = _write_errors(exc.details)
                if others:
                    raise
                return [record for i, record in enumerate(records) if i not in set(refused)]
            return list(records)

        return self._read(write)

    def pending_alerts(self, platform: str, seller_id: str) -> list[AlertRecord]:
        """The shop's alerts not yet delivered, oldest first."""
        where = {"platform": platform, "seller_id": seller_id, "status": PENDING}
        return [_alert_from_doc(doc) for doc in self._find("alerts", where, ("created_at", "_id"))]

    def alerts_for(self, platform: str, seller_id: str) -> list[AlertRecord]:
        """Every alert of the shop in the outbox, oldest first."""
        where = {"platform": platform, "seller_id": seller_id}
        return [_alert_from_doc(doc) for doc in self._find("alerts", where, ("created_at", "_id"))]

    def mark_alerts(self, keys: Sequence[str], at: datetime, error: str | None = None) -> None:
        """One attempt at sending ``keys``: delivered when ``error`` is None, else its error kept."""
        if not keys:
            return
        at = at.astimezone(UTC).replace(microsecond=at.microsecond // 1000 * 1000)
        changes: Doc = {"status": DELIVERED, "last_error": "", "delivered_at": at}
        update = {"$set": changes if error is None else {"last_error": error}, "$inc": {"attempts": 1}}
        self._bulk("alerts", [UpdateMany({"_id": {"$in": list(keys)}}, update)], f"mark {len(keys)} alerts")


def _alert_indexes(db: Database[Doc]) -> None:
    db.alerts.create_index([("content_key", 1)], name="alerts_by_content", unique=True)
    keys = [("platform", 1), ("seller_id", 1), ("status", 1), ("created_at", 1)]
    db.alerts.create_index(keys, name="alerts_by_shop")


def _alert_doc(record: AlertRecord) -> Doc:
    doc: Doc = {f.name: getattr(record, f.name) for f in fields(AlertRecord) if f.name != "key"}
    return doc | {"_id": record.key, "change": _as_json(record.change)}


def _alert_from_doc(doc: Mapping[str, Any]) -> AlertRecord:
    values: dict[str, Any] = {f.name: doc.get(f.name) for f in fields(AlertRecord) if f.name != "key"}
    return AlertRecord(key=doc["_id"], **values)

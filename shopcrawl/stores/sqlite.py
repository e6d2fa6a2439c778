"""SQLite store: one file that the worker processes of one machine share (WAL, busy timeout, retries).

Times the store makes (``first_seen``, ``last_seen``, ``observed_at``, ``created_at``) and run times are
UTC ISO 8601 with offset and microseconds, so they sort as text; item ``modified`` / ``list_time`` keep
the source offset. Money is integer fen plus the source string; ``coverage`` and ``ban_wait_seconds``
are the only REAL columns.
"""

from __future__ import annotations

import itertools
import json
import logging
import operator
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, fields
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

from shopcrawl.items import PriceTier, Reject, ShopItem, Sku
from shopcrawl.stores.base import (
    FAILED_PREFIX,
    MISSING_PREFIX,
    ItemRun,
    RunRecord,
    RunTally,
    ShopTotals,
    StoreError,
    item_runs,
    median_fen,
)
from shopcrawl.stores.outbox import AlertRecord

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 6
_FEN = "INTEGER NOT NULL CHECK (typeof(price_fen) = 'integer')"
_DDL = (
    f"""CREATE TABLE IF NOT EXISTS items (
        platform TEXT NOT NULL, seller_id TEXT NOT NULL, num_iid INTEGER NOT NULL,
        title TEXT NOT NULL, price TEXT NOT NULL, price_fen {_FEN}, num INTEGER NOT NULL,
        sold_quantity INTEGER, modified TEXT NOT NULL, approve_status TEXT NOT NULL, list_time TEXT,
        nick TEXT NOT NULL, cid INTEGER, outer_id TEXT NOT NULL, pic_url TEXT NOT NULL,
        item_imgs TEXT NOT NULL, "desc" TEXT, skus TEXT NOT NULL,
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, last_run_id TEXT NOT NULL,
        extras TEXT NOT NULL DEFAULT '{{}}',
        price_tiers TEXT NOT NULL DEFAULT '[]', min_order_quantity INTEGER,
        detail_at TEXT, listing_fp TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'active', delisted_at TEXT,
        PRIMARY KEY (platform, seller_id, num_iid))""",
    f"""CREATE TABLE IF NOT EXISTS observations (
        run_id TEXT NOT NULL, platform TEXT NOT NULL, seller_id TEXT NOT NULL, num_iid INTEGER NOT NULL,
        sku_id INTEGER NOT NULL, price TEXT NOT NULL, price_fen {_FEN}, quantity INTEGER NOT NULL,
        sold_quantity INTEGER, observed_at TEXT NOT NULL,
        PRIMARY KEY (run_id, platform, seller_id, num_iid, sku_id)) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS observations_by_sku
        ON observations (platform, seller_id, num_iid, sku_id, run_id)""",
    # 1688 quantity price tiers, observed per run like SKUs (created with schema 4, and by its migration).
    f"""CREATE TABLE IF NOT EXISTS tier_observations (
        run_id TEXT NOT NULL, platform TEXT NOT NULL, seller_id TEXT NOT NULL, num_iid INTEGER NOT NULL,
        start_quantity INTEGER NOT NULL, price TEXT NOT NULL, price_fen {_FEN}, observed_at TEXT NOT NULL,
        PRIMARY KEY (run_id, platform, seller_id, num_iid, start_quantity)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, platform TEXT NOT NULL, seller_id TEXT NOT NULL,
        started_at TEXT NOT NULL, finished_at TEXT, declared_total INTEGER,
        items_listed INTEGER NOT NULL, items_stored INTEGER NOT NULL, items_rejected INTEGER NOT NULL,
        items_missing INTEGER NOT NULL, coverage REAL, api_calls TEXT NOT NULL, retries INTEGER NOT NULL,
        ban_wait_seconds REAL NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
        items_failed INTEGER NOT NULL DEFAULT 0, heartbeat_at TEXT, owner TEXT NOT NULL DEFAULT '',
        totals TEXT)""",
    "CREATE INDEX IF NOT EXISTS runs_by_seller ON runs (seller_id, started_at)",
    """CREATE TABLE IF NOT EXISTS rejects (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, platform TEXT NOT NULL, seller_id TEXT NOT NULL,
        num_iid INTEGER, reason TEXT NOT NULL, payload TEXT NOT NULL, created_at TEXT NOT NULL)""",
    # Also serves lookups by run_id (its leading column), so rejects need no other index.
    """CREATE UNIQUE INDEX IF NOT EXISTS rejects_key
        ON rejects (run_id, platform, seller_id, COALESCE(num_iid, -1), reason)""",
)


_TIER_DDL = next(statement for statement in _DDL if "tier_observations" in statement)


class Observation(NamedTuple):
    """One row of ``observations``; ``sold_quantity`` is the item's (TOP gives no per-SKU sales)."""

    run_id: str
    platform: str
    seller_id: str
    num_iid: int
    sku_id: int  # 0 for an item without SKUs
    price: str
    price_fen: int
    quantity: int
    sold_quantity: int | None
    observed_at: datetime


class TierObservation(NamedTuple):
    """One row of ``tier_observations``: a 1688 quantity price tier of an item, seen by a run."""

    run_id: str
    platform: str
    seller_id: str
    num_iid: int
    start_quantity: int
    price: str
    price_fen: int
    observed_at: datetime


def _insert(table: str, columns: Sequence[str], on_conflict: str) -> str:
    names, values = ", ".join(f'"{c}"' for c in columns), ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT {on_conflict}"


def _update_all_but(columns: Sequence[str], keep: Sequence[str]) -> str:
    return "DO UPDATE SET " + ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in keep)


# Rows are built from the dataclasses' fields, so the tables above must have a column for each.
_ITEM_COLUMNS = [f.name for f in fields(ShopItem) if f.name != "run_id"]
_ITEM_COLUMNS += ["first_seen", "last_seen", "last_run_id"]
_ITEM_KEY = ("platform", "seller_id", "num_iid")
_RUN_COLUMNS = [f.name for f in fields(RunRecord)]
_RUN_START_ONLY = ("owner", "heartbeat_at")  # set when a run starts (and by heartbeats), kept at its finish
_REJECT_COLUMNS = [f.name for f in fields(Reject)] + ["created_at"]

_UPSERT_ITEM = _insert(
    "items",
    _ITEM_COLUMNS,
    f"({', '.join(_ITEM_KEY)}) " + _update_all_but(_ITEM_COLUMNS, (*_ITEM_KEY, "first_seen")),
)
_INSERT_OBSERVATION = _insert("observations", Observation._fields, "DO NOTHING")
_INSERT_TIER_OBSERVATION = _insert("tier_observations", TierObservation._fields, "DO NOTHING")
_START_RUN = _insert("runs", _RUN_COLUMNS, "DO NOTHING")
_FINISH_RUN = _insert(
    "runs",
    _RUN_COLUMNS,
    "(run_id) " + _update_all_but(_RUN_COLUMNS, ("run_id", "started_at", *_RUN_START_ONLY)),
)
_INSERT_REJECT = _insert("rejects", _REJECT_COLUMNS, "DO NOTHING")
_ITEMS_V4 = ("price_tiers TEXT NOT NULL DEFAULT '[]'", "min_order_quantity INTEGER")
_ITEMS_V5 = (
    "detail_at TEXT",
    "listing_fp TEXT NOT NULL DEFAULT ''",
    "status TEXT NOT NULL DEFAULT 'active'",
    "delisted_at TEXT",
)
_RUNS_V3 = ("items_failed INTEGER NOT NULL DEFAULT 0", "heartbeat_at TEXT", "owner TEXT NOT NULL DEFAULT ''")
# A complete run's ShopTotals (JSON), set by finish_run; NULL for other runs and runs finished before 6.
_RUNS_V6 = "totals TEXT"
_SET_TOTALS = "UPDATE runs SET totals = :totals WHERE run_id = :run_id"
# Runs' observations of one shop in (run_id, num_iid, sku_id) order: the primary key's.
_RUNS_ITEMS = """SELECT run_id, num_iid, price_fen, quantity, sold_quantity FROM observations
    WHERE run_id IN (SELECT value FROM json_each(:runs)) AND platform = :p AND seller_id = :s
    ORDER BY run_id, num_iid, sku_id"""
# A run's shop totals, computed in SQLite so that no per-item object is built (100,000 of them were
# ~37 MiB of a 100,000-item crawl's peak RSS): per item its lowest price, total stock and sales count
# (every observation row of an item carries the item's count), then the count, sums and the middle
# one or two prices (the median is taken from those in Python, exactly).
_PER_ITEM = """WITH per AS (SELECT MIN(price_fen) AS p, SUM(quantity) AS q, MAX(sold_quantity) AS s
    FROM observations WHERE run_id = :run_id AND platform = :p AND seller_id = :s GROUP BY num_iid)"""
_RUN_SUMS = _PER_ITEM + " SELECT COUNT(*), COALESCE(SUM(q), 0), SUM(s) FROM per"
_RUN_MIDDLE = _PER_ITEM + " SELECT p FROM per ORDER BY p LIMIT :count OFFSET :skip"
# Per distinct item of a run: stored (has an observation), else the best-ranked reject kind.
_TALLY = f"""
WITH stored AS (SELECT DISTINCT num_iid FROM observations WHERE run_id = :run_id),
ranked AS (
    SELECT num_iid, MIN(CASE WHEN reason LIKE '{FAILED_PREFIX}%' THEN 3
                             WHEN reason LIKE '{MISSING_PREFIX}%' THEN 2 ELSE 1 END) AS kind
    FROM rejects WHERE run_id = :run_id AND num_iid IS NOT NULL AND num_iid NOT IN stored
    GROUP BY num_iid)
SELECT (SELECT COUNT(*) FROM stored), COUNT(*) FILTER (WHERE kind = 1),
       COUNT(*) FILTER (WHERE kind = 2), COUNT(*) FILTER (WHERE kind = 3) FROM ranked
"""

# The items a run saw: stored (an observation) or refused for a reason about the item itself. An item
# the detail call omitted (deleted since listing) or whose calls gave up was not seen.
_SEEN = f"""
SELECT num_iid FROM observations WHERE run_id = :run_id
UNION SELECT num_iid FROM rejects WHERE run_id = :run_id AND num_iid IS NOT NULL
    AND reason NOT LIKE '{FAILED_PREFIX}%' AND reason NOT LIKE '{MISSING_PREFIX}%'
"""
_RELIST = f"""UPDATE items SET status = 'relisted'
    WHERE platform = :platform AND seller_id = :seller_id AND status = 'delisted' AND num_iid IN ({_SEEN})"""
_DELIST = f"""UPDATE items SET status = 'delisted', delisted_at = :now
    WHERE platform = :platform AND seller_id = :seller_id AND status != 'delisted'
    AND num_iid NOT IN ({_SEEN})"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None, *, utc: bool = False) -> str | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the store needs timezone-aware times")
    return value.astimezone(UTC).isoformat(timespec="microseconds") if utc else value.isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json_default(value: object) -> str:
    isoformat = getattr(value, "isoformat", None)  # datetime, date, time
    return str(isoformat()) if callable(isoformat) else str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json(value: object) -> str:
    # One encoder for every call (json.dumps builds a new one each time it gets options); empty
    # containers, most of an item's JSON columns, skip the encoder altogether.
    if not value and isinstance(value, list | dict):
        return "[]" if isinstance(value, list) else "{}"
    return _ENCODER.encode(value)


def _is_locked(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # primary code of an extended one
    return code in (5, 6) or "locked" in str(exc)  # SQLITE_BUSY, SQLITE_LOCKED


def _item_row(item: ShopItem, now: str) -> dict[str, Any]:
    # A shallow copy of the fields: the nested values are only serialised, never changed, so the deep
    # copy of dataclasses.asdict (the store's largest CPU cost, in the writer thread) is not needed.
    row = dict(vars(item))
    row.update(modified=_iso(item.modified), list_time=_iso(item.list_time), item_imgs=_json(item.item_imgs))
    row.update(skus=_json([vars(s) for s in item.skus]), first_seen=now, last_seen=now)
    row.update(last_run_id=row.pop("run_id"), extras=_json(item.extras))
    row.update(price_tiers=_json([vars(t) for t in item.price_tiers]))
    row["detail_at"] = now if item.detail_at is None else _iso(item.detail_at, utc=True)
    return row


def _observation_rows(item: ShopItem, now: str) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"run_id": item.run_id, "platform": item.platform, "seller_id": item.seller_id}
    base |= {"num_iid": item.num_iid, "sold_quantity": item.sold_quantity, "observed_at": now}
    if not item.skus:
        return [{**base, "sku_id": 0, "price": item.price, "price_fen": item.price_fen, "quantity": item.num}]
    return [
        {**base, "sku_id": s.sku_id, "price": s.price, "price_fen": s.price_fen, "quantity": s.quantity}
        for s in item.skus
    ]


def _tier_observation_rows(item: ShopItem, now: str) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"run_id": item.run_id, "platform": item.platform, "seller_id": item.seller_id}
    return [
        base
        | {"num_iid": item.num_iid, "start_quantity": t.start_quantity, "price": t.price}
        | {"price_fen": t.price_fen, "observed_at": now}
        for t in item.price_tiers
    ]


def _run_row(run: RunRecord) -> dict[str, Any]:
    row = asdict(run)
    row.update(started_at=_iso(run.started_at, utc=True), finished_at=_iso(run.finished_at, utc=True))
    row.update(heartbeat_at=_iso(run.heartbeat_at, utc=True))
    return row | {"api_calls": _json(run.api_calls)}


def _item_from_row(row: sqlite3.Row) -> ShopItem:
    data: dict[str, Any] = dict(row)
    del data["first_seen"], data["last_seen"], data["status"], data["delisted_at"]
    data["detail_at"] = _dt(data["detail_at"])
    data.update(
        run_id=data.pop("last_run_id"), modified=_dt(data["modified"]), list_time=_dt(data["list_time"])
    )
    data.update(item_imgs=json.loads(data["item_imgs"]), skus=[Sku(**s) for s in json.loads(data["skus"])])
    data.update(extras=json.loads(data["extras"]))
    data.update(price_tiers=[PriceTier(**t) for t in json.loads(data["price_tiers"])])
    return ShopItem(**data)


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    data: dict[str, Any] = dict(row)
    data.pop("totals", None)  # read by run_totals
    data.update(started_at=_dt(data["started_at"]), finished_at=_dt(data["finished_at"]))
    data.update(heartbeat_at=_dt(data["heartbeat_at"]))
    return RunRecord(**data | {"api_calls": json.loads(data["api_calls"])})


class SqliteStore:
    """The ``Store`` for ``sqlite:///path.db``: safe for a thread pool and for several processes.

    Each write is one ``BEGIN IMMEDIATE`` transaction; SQLite's busy timeout waits for other writers, and
    a database still locked after it is retried ``lock_retries`` times with backoff, then ``StoreError``.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        busy_timeout: float = 30.0,
        lock_retries: int = 3,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._lock_retries = lock_retries
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        with self._lock:
            if self._conn is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
                )
                self._conn.row_factory = sqlite3.Row
                self._transact("set pragmas", self._set_pragmas, begin=False)
                self._transact("create schema", self._create_schema)
            except BaseException as exc:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()
                if isinstance(exc, OSError | sqlite3.Error):
                    raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
                raise
        logger.info("Opened SQLite store %s (schema version %d)", self.path, SCHEMA_VERSION)

    def start_run(self, run: RunRecord) -> None:
        self._write(f"start run {run.run_id}", (_START_RUN, [_run_row(run)]))

    def write_items(self, items: Sequence[ShopItem]) -> None:
        now = _iso(self._clock(), utc=True) or ""
        item_rows, observation_rows, tier_rows = [], [], []
        for item in items:
            if not item.run_id:
                raise ValueError(f"item {item.platform}/{item.seller_id}/{item.num_iid} has no run_id")
            item_rows.append(_item_row(item, now))
            observation_rows += _observation_rows(item, now)
            tier_rows += _tier_observation_rows(item, now)
        if item_rows:
            batches = [(_UPSERT_ITEM, item_rows), (_INSERT_OBSERVATION, observation_rows)]
            if tier_rows:
                batches.append((_INSERT_TIER_OBSERVATION, tier_rows))
            self._write(f"write {len(item_rows)} items", *batches)

    def write_rejects(self, rejects: Sequence[Reject]) -> None:
        now = _iso(self._clock(), utc=True)
        rows = [asdict(r) | {"payload": _json(r.payload), "created_at": now} for r in rejects]
        if rows:
            self._write(f"write {len(rows)} rejects", (_INSERT_REJECT, rows))

    def finish_run(self, run: RunRecord) -> None:
        """The final record; a complete run's shop totals are computed from its observations (read
        before the write transaction) and kept in ``runs.totals``."""
        totals = None
        if run.status == "complete":
            totals = _json(self._shop_totals(run).as_json())
        set_totals = (_SET_TOTALS, [{"run_id": run.run_id, "totals": totals}])
        self._write(f"finish run {run.run_id}", (_FINISH_RUN, [_run_row(run)]), set_totals)

    def heartbeat(self, run_id: str, at: datetime) -> None:
        sql = "UPDATE runs SET heartbeat_at = :at WHERE run_id = :run_id AND status = 'running'"
        self._write(f"heartbeat run {run_id}", (sql, [{"run_id": run_id, "at": _iso(at, utc=True)}]))

    def running_runs(self, platform: str, seller_id: str) -> list[RunRecord]:
        sql = "SELECT * FROM runs WHERE platform = :p AND seller_id = :s AND status = 'running'"
        return [
            _run_from_row(row)
            for row in self._read(sql + " ORDER BY started_at", {"p": platform, "s": seller_id})
        ]

    def runs_for(self, platform: str, seller_id: str) -> list[RunRecord]:
        """Every run of this shop, oldest first."""
        sql = "SELECT * FROM runs WHERE platform = :p AND seller_id = :s ORDER BY started_at, run_id"
        return [_run_from_row(row) for row in self._read(sql, {"p": platform, "s": seller_id})]

    def _shop_totals(self, run: RunRecord) -> ShopTotals:
        """``ShopTotals.of`` this run's items, computed by SQLite (see ``_RUN_SUMS``)."""
        params: dict[str, object] = {"run_id": run.run_id, "p": run.platform, "s": run.seller_id}
        with self._lock:
            try:
                conn = self._connection()
                items, stock, sales = conn.execute(_RUN_SUMS, params).fetchone()
                middle = [
                    row[0]
                    for row in conn.execute(
                        _RUN_MIDDLE, params | {"count": 2 - items % 2, "skip": (items - 1) // 2}
                    )
                ]
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: read failed: {exc}") from exc
        return ShopTotals(items, stock, sales, median_fen(middle))

    def run_totals(self, platform: str, seller_id: str) -> dict[str, ShopTotals]:
        """The stored shop totals of this shop's runs, by run_id (runs without them are left out)."""
        sql = "SELECT run_id, totals FROM runs WHERE platform = :p AND seller_id = :s AND totals IS NOT NULL"
        rows = self._read(sql, {"p": platform, "s": seller_id})
        return {row[0]: ShopTotals.from_json(json.loads(row[1])) for row in rows}

    def items_of_runs(
        self, platform: str, seller_id: str, run_ids: Sequence[str]
    ) -> dict[str, dict[int, ItemRun]]:
        """Per run among these, per item of this shop it observed: lowest price, total stock, sales
        count (one query; a run that observed nothing is left out)."""
        params = {"runs": _json(list(run_ids)), "p": platform, "s": seller_id}
        with self._lock:
            try:
                cursor = self._connection().execute(_RUNS_ITEMS, params)
                cursor.row_factory = None  # plain tuples
                return {
                    run_id: item_runs(row[1:] for row in rows)
                    for run_id, rows in itertools.groupby(cursor, key=operator.itemgetter(0))
                }
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: read failed: {exc}") from exc

    def item_ids(self, platform: str, seller_id: str) -> list[int]:
        """Every item of this shop the store holds (any status), in num_iid order."""
        sql = "SELECT num_iid FROM items WHERE platform = :p AND seller_id = :s ORDER BY num_iid"
        return [row[0] for row in self._read(sql, {"p": platform, "s": seller_id})]

    def runs_of_items(self, platform: str, seller_id: str, num_iids: Sequence[int]) -> dict[int, set[str]]:
        """Per item among these of this shop, the runs that observed it: one query, answered by the
        per-item index alone (``observations_by_sku`` holds the run_id)."""
        if not num_iids:
            return {}
        sql = (
            "SELECT num_iid, run_id FROM observations"
            " WHERE platform = :p AND seller_id = :s AND num_iid IN (SELECT value FROM json_each(:ids))"
        )
        found: dict[int, set[str]] = {}
        for num_iid, run_id in self._read(sql, {"p": platform, "s": seller_id, "ids": _json(list(num_iids))}):
            found.setdefault(num_iid, set()).add(run_id)
        return found

    def observations_of_items(
        self, platform: str, seller_id: str, num_iids: Sequence[int]
    ) -> list[Observation]:
        """Every run's observations of these few items of this shop (one query, by the per-item index):
        the price history of the items a report charts."""
        if not num_iids:
            return []
        sql = (
            f"SELECT {', '.join(Observation._fields)} FROM observations"
            " WHERE platform = :p AND seller_id = :s AND num_iid IN (SELECT value FROM json_each(:ids))"
        )
        rows = self._read(sql, {"p": platform, "s": seller_id, "ids": _json(list(num_iids))})
        parse, make = datetime.fromisoformat, Observation._make
        return [make((*row[:-1], parse(row[-1]))) for row in rows]

    def observations_at(
        self, platform: str, seller_id: str, keys: Sequence[tuple[int, str]]
    ) -> list[Observation]:
        """The observations of these (num_iid, run_id) pairs of this shop, every SKU's: one query, one
        primary-key search per pair."""
        if not keys:
            return []
        sql = (
            f"SELECT {', '.join(f'o.{name}' for name in Observation._fields)}"
            " FROM json_each(:keys) AS k CROSS JOIN observations AS o"  # CROSS JOIN: the pairs drive
            " ON o.run_id = json_extract(k.value, '$[1]') AND o.platform = :p AND o.seller_id = :s"
            " AND o.num_iid = json_extract(k.value, '$[0]')"
        )
        rows = self._read(sql, {"p": platform, "s": seller_id, "keys": _json([list(key) for key in keys])})
        parse, make = datetime.fromisoformat, Observation._make
        return [make((*row[:-1], parse(row[-1]))) for row in rows]

    def observed_in(
        self, platform: str, seller_id: str, num_iids: Sequence[int], run_ids: Sequence[str]
    ) -> set[int]:
        """Which of these items any of these runs observed (by the per-item index: the few asked about)."""
        found: set[int] = set()
        runs = list(run_ids)
        if not runs:
            return found
        for i in range(0, len(num_iids), 500):
            ids = list(num_iids[i : i + 500])
            params: dict[str, object] = {"p": platform, "s": seller_id}
            params |= {f"i{k}": n for k, n in enumerate(ids)} | {f"r{k}": r for k, r in enumerate(runs)}
            sql = (
                "SELECT DISTINCT num_iid FROM observations WHERE platform = :p AND seller_id = :s"
                f" AND num_iid IN ({', '.join(f':i{k}' for k in range(len(ids)))})"
                f" AND run_id IN ({', '.join(f':r{k}' for k in range(len(runs)))})"
            )
            found.update(row[0] for row in self._read(sql, params))
        return found

    def titles_of(self, platform: str, seller_id: str, num_iids: Sequence[int]) -> dict[int, str]:
        titles: dict[int, str] = {}
        for i in range(0, len(num_iids), 500):
            ids = list(num_iids[i : i + 500])
            params: dict[str, object] = {"p": platform, "s": seller_id} | {
                f"i{k}": n for k, n in enumerate(ids)
            }
            sql = (
                "SELECT num_iid, title FROM items WHERE platform = :p AND seller_id = :s"
                f" AND num_iid IN ({', '.join(f':i{k}' for k in range(len(ids)))})"
            )
            titles.update((row[0], row[1]) for row in self._read(sql, params))
        return titles

    def mark_abandoned(self, run_id: str, reason: str, at: datetime) -> bool:
        sql = (
            "UPDATE runs SET status = 'abandoned', reason = :reason, finished_at = :at"
            " WHERE run_id = :run_id AND status = 'running'"
        )
        params = {"run_id": run_id, "reason": reason, "at": _iso(at, utc=True)}
        changed = [0]

        def body(conn: sqlite3.Connection) -> None:
            changed[0] = conn.execute(sql, params).rowcount

        with self._lock:
            self._transact(f"abandon run {run_id}", body)
        return changed[0] > 0

    def items_by_id(self, platform: str, seller_id: str, ids: Sequence[int]) -> dict[int, ShopItem]:
        """The stored items among ``ids`` of this shop, by num_iid: one query."""
        if not ids:
            return {}
        sql = (
            "SELECT * FROM items WHERE platform = :platform AND seller_id = :seller_id"
            " AND num_iid IN (SELECT value FROM json_each(:ids))"
        )
        rows = self._read(sql, {"platform": platform, "seller_id": seller_id, "ids": _json(list(ids))})
        return {item.num_iid: item for item in map(_item_from_row, rows)}

    def apply_lifecycle(self, run: RunRecord) -> tuple[int, int]:
        """After a run: its shop's delisted items it saw become ``relisted``; when the run is complete,
        the shop's items it did not see become ``delisted`` (``delisted_at`` set). (delisted, relisted)."""
        params: dict[str, object] = {"run_id": run.run_id, "platform": run.platform}
        params |= {"seller_id": run.seller_id, "now": _iso(run.finished_at or self._clock(), utc=True)}
        counts = [0, 0]

        def body(conn: sqlite3.Connection) -> None:
            counts[1] = conn.execute(_RELIST, params).rowcount
            if run.status == "complete":
                counts[0] = conn.execute(_DELIST, params).rowcount

        with self._lock:
            self._transact(f"apply lifecycle of run {run.run_id}", body)
        return counts[0], counts[1]

    def item_status(self, platform: str, seller_id: str) -> dict[int, tuple[str, datetime | None]]:
        """num_iid -> (status, delisted_at) of the shop's items, for tests and reports."""
        sql = "SELECT num_iid, status, delisted_at FROM items WHERE platform = :p AND seller_id = :s"
        rows = self._read(sql, {"p": platform, "s": seller_id})
        return {row[0]: (row[1], _dt(row[2])) for row in rows}

    def tally(self, run_id: str) -> RunTally:
        stored, rejected, missing, failed = self._read(_TALLY, {"run_id": run_id})[0]
        return RunTally(stored, rejected, missing, failed)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            logger.info("Closed SQLite store %s", self.path)

    # Pure reads, for tests and reports.

    def count_items(self, platform: str | None = None, seller_id: str | None = None) -> int:
        where = {"platform": platform, "seller_id": seller_id}
        terms = [f"{column} = :{column}" for column, value in where.items() if value is not None]
        sql = "SELECT COUNT(*) FROM items" + (" WHERE " + " AND ".join(terms) if terms else "")
        return int(self._read(sql, where)[0][0])

    def iter_items(self, seller_id: str, page_size: int = 500) -> Iterator[ShopItem]:
        """The seller's items ordered by (platform, num_iid), read a page at a time."""
        sql = (
            "SELECT * FROM items WHERE seller_id = :seller_id AND (platform, num_iid) > (:platform, :num_iid)"
            " ORDER BY platform, num_iid LIMIT :limit"
        )
        after: dict[str, object] = {"seller_id": seller_id, "platform": "", "num_iid": -1, "limit": page_size}
        while rows := self._read(sql, after):
            yield from map(_item_from_row, rows)
            after |= {"platform": rows[-1]["platform"], "num_iid": rows[-1]["num_iid"]}

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read("SELECT * FROM runs WHERE run_id = :run_id", {"run_id": run_id})
        return _run_from_row(rows[0]) if rows else None

    def observations_for_run(self, run_id: str) -> list[Observation]:
        sql = f"SELECT {', '.join(Observation._fields)} FROM observations WHERE run_id = :run_id"
        rows = self._read(sql + " ORDER BY platform, seller_id, num_iid, sku_id", {"run_id": run_id})
        parse, make = datetime.fromisoformat, Observation._make  # the fields' order: Observation's
        return [make((*row[:-1], parse(row[-1]))) for row in rows]

    def tier_observations_for_run(self, run_id: str) -> list[TierObservation]:
        sql = f"SELECT {', '.join(TierObservation._fields)} FROM tier_observations WHERE run_id = :run_id"
        order = " ORDER BY platform, seller_id, num_iid, start_quantity"
        rows = self._read(sql + order, {"run_id": run_id})
        parse, make = datetime.fromisoformat, TierObservation._make
        return [make((*row[:-1], parse(row[-1]))) for row in rows]

    def rejects_for_run(self, run_id: str) -> list[Reject]:
        sql = f"SELECT {', '.join(_REJECT_COLUMNS[:-1])} FROM rejects WHERE run_id = :run_id ORDER BY id"
        rows = self._read(sql, {"run_id": run_id})
        return [Reject(**dict(row) | {"payload": json.loads(row["payload"])}) for row in rows]

    # Internals; callers of _transact hold self._lock.

    def _set_pragmas(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL (persistent, once per file) takes an exclusive lock that ignores busy_timeout.
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning(
                    "SQLite store %s: journal_mode %s, not wal; writers block readers", self.path, mode
                )
        conn.execute("PRAGMA synchronous = NORMAL")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {self.path} has schema {version}; this shopcrawl knows {SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            for statement in _DDL:
                conn.execute(statement)
            if 1 <= version < 2:  # 1 -> 2: items.extras (the detail record's unmapped fields)
                conn.execute("ALTER TABLE items ADD COLUMN extras TEXT NOT NULL DEFAULT '{}'")
            if 1 <= version < 3:  # 2 -> 3: runs' liveness (heartbeat_at, owner) and items_failed
                have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
                for column in _RUNS_V3:
                    if column.split()[0] not in have:
                        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
            if 1 <= version < 4:  # 3 -> 4: 1688's quantity price tiers and minimum order
                have = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
                for column in _ITEMS_V4:
                    if column.split()[0] not in have:
                        conn.execute(f"ALTER TABLE items ADD COLUMN {column}")
            if 1 <= version < 5:  # 4 -> 5: incremental crawls and the item lifecycle
                have = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
                for column in _ITEMS_V5:
                    if column.split()[0] not in have:
                        conn.execute(f"ALTER TABLE items ADD COLUMN {column}")
            if 1 <= version < 6:  # 5 -> 6: complete runs' shop totals (earlier runs keep NULL)
                have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
                if "totals" not in have:
                    conn.execute(f"ALTER TABLE runs ADD COLUMN {_RUNS_V6}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        else:  # a version-4 file written before tier_observations existed: add it (idempotent)
            conn.execute(_TIER_DDL)

    def _write(self, what: str, *batches: tuple[str, Sequence[Mapping[str, Any]]]) -> None:
        """Run each ``(sql, rows)`` batch with ``executemany``, all in one transaction."""

        def body(conn: sqlite3.Connection) -> None:
            for sql, rows in batches:
                conn.executemany(sql, rows)

        with self._lock:
            self._transact(what, body)

    def _transact(self, what: str, body: Callable[[sqlite3.Connection], None], begin: bool = True) -> None:
        conn = self._connection()
        for attempt in range(self._lock_retries + 1):
            try:
                if begin:
                    conn.execute("BEGIN IMMEDIATE")
                body(conn)
                if begin:
                    conn.execute("COMMIT")
                return
            except BaseException as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if not isinstance(exc, sqlite3.Error):
                    raise
                if not _is_locked(exc) or attempt == self._lock_retries:
                    raise StoreError(f"SQLite store {self.path}: {what} failed: {exc}") from exc
                delay = min(0.25 * 2**attempt, 5.0) * (1 + random.random())  # jitter, not crypto
                logger.warning(
                    "SQLite store %s is locked (%s); retry %d/%d in %.2fs",
                    self.path,
                    what,
                    attempt + 1,
                    self._lock_retries,
                    delay,
                )
                time.sleep(delay)

    def _read(self, sql: str, params: Mapping[str, object]) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: read failed: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"SQLite store {self.path} is not open")
        return self._conn

    # The alerts outbox (see shopcrawl.stores.outbox): its table is made on first use.

    def queue_alerts(self, records: Sequence[AlertRecord]) -> list[AlertRecord]:
        """Write ``records`` as pending, skipping any whose key or content key is already in the
        outbox (pending or delivered); returns those written."""
        written: list[AlertRecord] = []

        def body(conn: sqlite3.Connection) -> None:
            for record in records:
                row = _alert_row(record)
                if conn.execute(_QUEUE_ALERT, row).rowcount:
                    written.append(record)

        with self._lock:
            self._transact(f"queue {len(records)} alerts", _with_alerts_table(body))
        return written

    def pending_alerts(self, platform: str, seller_id: str) -> list[AlertRecord]:
        """The shop's alerts not yet delivered, oldest first."""
        return self._alerts("AND status = 'pending'", platform, seller_id)

    def alerts_for(self, platform: str, seller_id: str) -> list[AlertRecord]:
        """Every alert of the shop in the outbox, oldest first."""
        return self._alerts("", platform, seller_id)

    def mark_alerts(self, keys: Sequence[str], at: datetime, error: str | None = None) -> None:
        """One attempt at sending ``keys``: delivered when ``error`` is None, else its error kept."""
        if error is None:
            sql = (
                "UPDATE alerts SET status = 'delivered', attempts = attempts + 1, last_error = '',"
                " delivered_at = :at WHERE key = :key"
            )
        else:
            sql = "UPDATE alerts SET attempts = attempts + 1, last_error = :error WHERE key = :key"
        rows = [{"key": key, "at": _iso(at, utc=True), "error": error or ""} for key in keys]

        def body(conn: sqlite3.Connection) -> None:
            conn.executemany(sql, rows)

        with self._lock:
            self._transact(f"mark {len(rows)} alerts", _with_alerts_table(body))

    def _alerts(self, where: str, platform: str, seller_id: str) -> list[AlertRecord]:
        with self._lock:
            self._transact("create the alerts table", _with_alerts_table(lambda conn: None))
        sql = f"SELECT * FROM alerts WHERE platform = :p AND seller_id = :s {where} ORDER BY created_at, key"
        return [_alert_from_row(row) for row in self._read(sql, {"p": platform, "s": seller_id})]


_ALERTS_DDL = (
    """CREATE TABLE IF NOT EXISTS alerts (
        key TEXT PRIMARY KEY, content_key TEXT NOT NULL, platform TEXT NOT NULL, seller_id TEXT NOT NULL,
        run_id TEXT NOT NULL, change TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS alerts_by_content ON alerts (content_key)",
    "CREATE INDEX IF NOT EXISTS alerts_by_shop ON alerts (platform, seller_id, status, created_at)",
)
_ALERT_COLUMNS = [f.name for f in fields(AlertRecord)]
# Both keys are unique: a change already queued under either is ignored.
_QUEUE_ALERT = _insert("alerts", _ALERT_COLUMNS, "DO NOTHING")


def _with_alerts_table(body: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for statement in _ALERTS_DDL:
            conn.execute(statement)
        body(conn)

    return run


def _alert_row(record: AlertRecord) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in _ALERT_COLUMNS}
    row |= {"change": _json(record.change), "created_at": _iso(record.created_at, utc=True)}
    return row | {"delivered_at": _iso(record.delivered_at, utc=True)}


def _alert_from_row(row: sqlite3.Row) -> AlertRecord:
    values = dict(row) | {"change": json.loads(row["change"])}
    values |= {"created_at": _dt(row["created_at"]), "delivered_at": _dt(row["delivered_at"])}
    return AlertRecord(**values)

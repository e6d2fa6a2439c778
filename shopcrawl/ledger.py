"""Which listing page first listed each item: the crawl's record of what it has listed.

In one process it is :class:`LocalLedger`; in distributed mode ``RunCoordinator`` keeps it in Redis
with the same interface, so every worker counts the same listed items and a page processed twice
(after a worker died) claims the same items again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Protocol

# LocalLedger keeps up to this many items in a dict (about 100 bytes each), then moves them to disk.
MEMORY_ITEMS = 20_000
# Ids per SELECT (under SQLite's limit on bound parameters).
_CHUNK = 500


class Ledger(Protocol):
    def claim(self, page_key: str, num_iids: Iterable[int]) -> set[int]:
        """Claim the unclaimed ids for this page; return every id the page owns."""

    def listed_count(self) -> int: ...

    def set_declared_total(self, total: int) -> None: ...

    def declared_total(self) -> int | None: ...

    def set_listing_gap(self, text: str) -> None:
        """Record why the listing plan cannot reach every declared item (the first reason wins)."""

    def listing_gap(self) -> str: ...


class LocalLedger:
    """The ledger of a single-process crawl, in bounded memory.

    Up to ``memory_items`` items are kept in a dict. Past that, every owner moves to a private
    temporary SQLite database (``sqlite3.connect("")``: SQLite unlinks its file as it creates it and
    the space goes with the connection, so nothing is left behind, even after a crash), and a page's
    claim is one ``INSERT OR IGNORE`` of its ids (plus, when some were listed before, one ``SELECT``
    of their owners). So a shop of any size holds at most ``memory_items`` owners plus SQLite's page
    cache (2 MiB) in memory, and a shop under ``memory_items`` never touches the disk. A sorted array
    of ids would be about 8 times smaller than the dict, but would still grow with the shop.
    """

    def __init__(self, memory_items: int = MEMORY_ITEMS) -> None:
        self._memory_items = memory_items
        self._owner: dict[int, str] = {}
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._declared: int | None = None
        self._gap = ""

    @property
    def spilled(self) -> bool:
        """Whether the owners live on disk (the ledger outgrew ``memory_items``)."""
        return self._db is not None

    def claim(self, page_key: str, num_iids: Iterable[int]) -> set[int]:
        ids = list(dict.fromkeys(num_iids))
        if self._db is None and len(self._owner) + len(ids) > self._memory_items:
            self._spill()
        if self._db is None:
            owned = {n for n in ids if self._owner.setdefault(n, page_key) == page_key}
            self._count = len(self._owner)
            return owned
        return self._claim_on_disk(self._db, page_key, ids)

    def _spill(self) -> None:
        db = sqlite3.connect("", check_same_thread=False)  # a transaction per ``with db``
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE owner (num_iid INTEGER PRIMARY KEY, page TEXT NOT NULL) WITHOUT ROWID")
        with db:
            db.executemany("INSERT INTO owner VALUES (?, ?)", self._owner.items())
        self._db, self._owner = db, {}

    def _claim_on_disk(self, db: sqlite3.Connection, page_key: str, ids: list[int]) -> set[int]:
        with db:  # one transaction per page
            added = db.executemany("INSERT OR IGNORE INTO owner VALUES (?, ?)", ((n, page_key) for n in ids))
        self._count += added.rowcount
        if added.rowcount == len(ids):  # the usual page: every id is new, so the page owns them all
            return set(ids)
        owned: set[int] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(f"SELECT num_iid, page FROM owner WHERE num_iid IN ({marks})", chunk)
            owned.update(n for n, page in rows if page == page_key)
        return owned

    def listed_count(self) -> int:
        return self._count

    def close(self) -> None:
        """Free the on-disk owners. The counts stay readable; no claim may follow."""
        if self._db is not None:
            self._db.close()

    def set_declared_total(self, total: int) -> None:
        if self._declared is None:
            self._declared = total

    def declared_total(self) -> int | None:
        return self._declared

    def set_listing_gap(self, text: str) -> None:
        self._gap = self._gap or text

    def listing_gap(self) -> str:
        return self._gap

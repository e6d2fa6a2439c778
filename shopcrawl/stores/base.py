"""The store interface every backend implements (SQLite now, MongoDB later), chosen by URI.

All methods are blocking; pipelines call them off the reactor thread. Every write is idempotent:
writing the same batch twice leaves the store as writing it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from shopcrawl.items import Reject, ShopItem


@dataclass
class RunRecord:
    run_id: str
    platform: str
    seller_id: str
    started_at: datetime  # timezone-aware
    finished_at: datetime | None = None
    declared_total: int | None = None  # total_results of the unwindowed listing
    items_listed: int = 0  # distinct num_iids the listing returned
    items_stored: int = 0
    items_rejected: int = 0
    items_missing: int = 0  # listed but omitted by the detail call
    # (stored + rejected + missing) / declared_total: the share of the shop accounted for
    coverage: float | None = None
    api_calls: dict[str, int] = field(default_factory=dict)  # by API method
    retries: int = 0
    ban_wait_seconds: float = 0.0
    status: str = "running"  # running | complete | incomplete | interrupted | failed | abandoned
    reason: str = ""  # finish reason or the fatal error line
    items_failed: int = 0  # listed items whose detail calls gave up (retries spent): not accounted for
    heartbeat_at: datetime | None = None  # last sign of life of a running run's crawl
    owner: str = ""  # "host:pid" of a single-process crawl; "" when Redis workers share the run


# Reject reasons: the item is gone (omitted by the detail call), or the crawl failed to get it (its
# calls gave up). Every other reject says why the item itself was refused.
MISSING_PREFIX = "detail/missing"
FAILED_PREFIX = "failed/"


@dataclass(frozen=True)
class RunTally:
    """What the store holds for one run, per distinct item (never per delivery): an item stored twice
    counts once, and an item both rejected and stored counts as stored."""

    stored: int = 0  # items with an observation in the run
    rejected: int = 0  # items refused with a reason about the item (invalid data, isv.* errors)
    missing: int = 0  # items the detail call omitted (deleted since listing)
    failed: int = 0  # items whose calls gave up

    @property
    def accounted(self) -> int:
        """Items whose state this run knows: stored, rejected with a reason, or missing."""
        return self.stored + self.rejected + self.missing

    @staticmethod
    def kind(reason: str) -> int:
        """Rank of a reject reason when an item has several: 1 rejected, 2 missing, 3 failed."""
        if reason.startswith(FAILED_PREFIX):
            return 3
        return 2 if reason.startswith(MISSING_PREFIX) else 1


@dataclass(frozen=True)
class ItemRun:
    """One item as one run saw it: lowest price (fen), total stock, sales count (None: not given).
    The lowest price over its SKUs (its own when it has none) is the "from" price a shop page shows."""

    price_fen: int
    quantity: int
    sold_quantity: int | None


def item_runs(rows: Iterable[tuple[int, int, int, int | None]]) -> dict[int, ItemRun]:
    """Per item, from a run's observation rows ``(num_iid, price_fen, quantity, sold_quantity)`` in
    (num_iid, sku_id) order: lowest price, total stock, first sales count given."""
    acc: dict[int, list[Any]] = {}
    for num_iid, price_fen, quantity, sold_quantity in rows:
        entry = acc.get(num_iid)
        if entry is None:
            acc[num_iid] = [price_fen, quantity, sold_quantity]
            continue
        if price_fen < entry[0]:
            entry[0] = price_fen
        entry[1] += quantity
        if entry[2] is None:
            entry[2] = sold_quantity
    return {num_iid: ItemRun(*entry) for num_iid, entry in acc.items()}


def median_fen(values: Sequence[int]) -> Decimal | None:
    """The exact median (half a fen when the count is even and the middle two differ)."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[mid])
    return (Decimal(ordered[mid - 1]) + Decimal(ordered[mid])) / 2


@dataclass(frozen=True)
class ShopTotals:
    """A complete run's shop totals, kept with the run by ``finish_run`` so that reports over many runs
    need not read every observation: items, total stock, total sales (None when no item carries a
    sales count) and the exact median item price in fen (items priced as :class:`ItemRun`)."""

    items: int
    stock: int
    sales: int | None
    median_fen: Decimal | None

    @classmethod
    def of(cls, items: Mapping[int, ItemRun]) -> ShopTotals:
        sales = [i.sold_quantity for i in items.values() if i.sold_quantity is not None]
        return cls(
            len(items),
            sum(i.quantity for i in items.values()),
            sum(sales) if sales else None,
            median_fen([i.price_fen for i in items.values()]),
        )

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (the median as an exact decimal string), as both stores keep it."""
        median = None if self.median_fen is None else str(self.median_fen)
        return {"items": self.items, "stock": self.stock, "sales": self.sales, "median_fen": median}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShopTotals:
        median = data["median_fen"]
        return cls(data["items"], data["stock"], data["sales"], None if median is None else Decimal(median))


class Store(Protocol):
    def open(self) -> None:
        """Connect and create tables/indexes if needed. Raises StoreError with a clear message."""

    def start_run(self, run: RunRecord) -> None:
        """Insert the run record (idempotent on run_id)."""

    def write_items(self, items: Sequence[ShopItem]) -> None:
        """Upsert items on (platform, seller_id, num_iid) and record one observation per
        (run_id, item, SKU); an item without SKUs gets one observation with sku_id 0."""

    def write_rejects(self, rejects: Sequence[Reject]) -> None:
        """Record rejects (idempotent on run_id, platform, seller_id, num_iid, reason)."""

    def finish_run(self, run: RunRecord) -> None:
        """Update the run record with its final counters and status. A ``complete`` run also gets its
        :class:`ShopTotals`, computed by the store from the run's observations."""

    def heartbeat(self, run_id: str, at: datetime) -> None:
        """Record that a running run's crawl is alive."""

    def running_runs(self, platform: str, seller_id: str) -> list[RunRecord]:
        """The seller's runs whose status is still ``running``."""

    def mark_abandoned(self, run_id: str, reason: str, at: datetime) -> bool:
        """Set a ``running`` run to ``abandoned`` (a no-op for any other status); True if it changed."""

    def count_items(self, platform: str | None = None, seller_id: str | None = None) -> int:
        """Items stored, of this platform and seller when given."""

    def items_by_id(self, platform: str, seller_id: str, ids: Sequence[int]) -> dict[int, ShopItem]:
        """The stored items among ``ids`` of this shop, by num_iid, in one query (an incremental
        crawl reads one listing page's items at a time)."""

    def apply_lifecycle(self, run: RunRecord) -> tuple[int, int]:
        """After a run has finished: the shop's ``delisted`` items the run saw become ``relisted``;
        only when the run is ``complete``, the shop's items it did not see become ``delisted``.
        Returns (delisted, relisted)."""

    def tally(self, run_id: str) -> RunTally:
        """Distinct items stored, rejected, missing and failed in the run (see :class:`RunTally`)."""

    def close(self) -> None: ...


class StoreError(RuntimeError):
    """A store could not be opened or written; the message names the store without secrets."""

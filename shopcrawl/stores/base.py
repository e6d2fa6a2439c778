"""The store interface every backend implements (SQLite now, MongoDB later), chosen by URI.

All methods are blocking; pipelines call them off the reactor thread. Every write is idempotent:
writing the same batch twice leaves the store as writing it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

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
    coverage: float | None = None  # items_listed / declared_total
    api_calls: dict[str, int] = field(default_factory=dict)  # by API method
    retries: int = 0
    ban_wait_seconds: float = 0.0
    status: str = "running"  # running | complete | incomplete | failed
    reason: str = ""  # finish reason or the fatal error line


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
        """Update the run record with its final counters and status."""

    def close(self) -> None: ...


class StoreError(RuntimeError):
    """A store could not be opened or written; the message names the store without secrets."""

"""The ``null://`` store: accepts every write and keeps nothing. The baseline for benchmarks (what a
crawl costs without a store) and a dry run; its read helpers answer as an empty store."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from shopcrawl.items import Reject, ShopItem
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.sqlite import Observation

logger = logging.getLogger(__name__)


class NullStore:
    """Counts what it is given (``items_written``, ``rejects_written``); never fails, never stores."""

    round_trips = 0
    escaped_keys = 0

    def __init__(self) -> None:
        self.items_written = 0
        self.rejects_written = 0

    def open(self) -> None:
        logger.info("Opened the null store: nothing will be stored")

    def start_run(self, run: RunRecord) -> None:
        pass

    def write_items(self, items: Sequence[ShopItem]) -> None:
        self.items_written += len(items)

    def write_rejects(self, rejects: Sequence[Reject]) -> None:
        self.rejects_written += len(rejects)

    def finish_run(self, run: RunRecord) -> None:
        pass

    def close(self) -> None:
        pass

    def count_items(self, platform: str | None = None, seller_id: str | None = None) -> int:
        return 0

    def iter_items(self, seller_id: str, page_size: int = 500) -> Iterator[ShopItem]:
        return iter(())

    def get_run(self, run_id: str) -> RunRecord | None:
        return None

    def observations_for_run(self, run_id: str) -> list[Observation]:
        return []

    def rejects_for_run(self, run_id: str) -> list[Reject]:
        return []

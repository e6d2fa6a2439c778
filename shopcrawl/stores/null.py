"""The ``null://`` store: accepts every write and keeps nothing. The baseline for benchmarks (what a
crawl costs without a store) and a dry run; its read helpers answer as an empty store."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime

from shopcrawl.items import Reject, ShopItem
from shopcrawl.stores.base import RunRecord, RunTally
from shopcrawl.stores.sqlite import Observation, TierObservation

logger = logging.getLogger(__name__)


class NullStore:
    """Counts what it is given (``items_written``, ``rejects_written``); never fails, never stores."""

    round_trips = 0
    escaped_keys = 0

    def __init__(self) -> None:
        self.items_written = 0
        self.rejects_written = 0
        # Per run, the distinct items given and the best-ranked reject kind of the others: what a
        # real store's tally would answer (a set of ints per item, kept for benchmarks' run records).
        self._stored: dict[str, set[int]] = {}
        self._rejected: dict[str, dict[int, int]] = {}

    def open(self) -> None:
        logger.info("Opened the null store: nothing will be stored")

    def start_run(self, run: RunRecord) -> None:
        pass

    def write_items(self, items: Sequence[ShopItem]) -> None:
        self.items_written += len(items)
        for item in items:
            self._stored.setdefault(item.run_id, set()).add(item.num_iid)

    def write_rejects(self, rejects: Sequence[Reject]) -> None:
        self.rejects_written += len(rejects)
        for reject in rejects:
            if reject.num_iid is not None:
                kinds = self._rejected.setdefault(reject.run_id, {})
                kind = RunTally.kind(reject.reason)
                kinds[reject.num_iid] = min(kind, kinds.get(reject.num_iid, kind))

    def finish_run(self, run: RunRecord) -> None:
        pass

    def heartbeat(self, run_id: str, at: datetime) -> None:
        pass

    def running_runs(self, platform: str, seller_id: str) -> list[RunRecord]:
        return []

    def runs_for(self, platform: str, seller_id: str) -> list[RunRecord]:
        return []

    def observed_in(
        self, platform: str, seller_id: str, num_iids: Sequence[int], run_ids: Sequence[str]
    ) -> set[int]:
        return set()

    def titles_of(self, platform: str, seller_id: str, num_iids: Sequence[int]) -> dict[int, str]:
        return {}

    def mark_abandoned(self, run_id: str, reason: str, at: datetime) -> bool:
        return False

    def items_by_id(self, platform: str, seller_id: str, ids: Sequence[int]) -> dict[int, ShopItem]:
        return {}  # nothing stored: every crawl is a full one

    def apply_lifecycle(self, run: RunRecord) -> tuple[int, int]:
        return 0, 0

    def tally(self, run_id: str) -> RunTally:
        stored = self._stored.get(run_id, set())
        ranks = [k for n, k in self._rejected.get(run_id, {}).items() if n not in stored]
        return RunTally(len(stored), ranks.count(1), ranks.count(2), ranks.count(3))

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

    def tier_observations_for_run(self, run_id: str) -> list[TierObservation]:
        return []

    def rejects_for_run(self, run_id: str) -> list[Reject]:
        return []

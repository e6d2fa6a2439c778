"""The run's lifecycle: open the store and start the run record, heartbeat it, finish it, summarise.

Store I/O runs in a worker thread, never on the reactor. When a seller is crawled, runs of that seller
left ``running`` by a crawl that died (its process is gone, or no heartbeat for a while) are marked
``abandoned`` first. At the end, the counts of the run record come from the store (distinct items
stored, rejected, missing), so a run is ``complete`` only when every declared item is accounted for,
however many times an item was delivered. A crawl stopped by SIGINT or SIGTERM ends ``interrupted``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Self

import redis
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.utils.defer import deferred_to_future
from twisted.internet import task, threads

from shopcrawl import signals as shopcrawl_signals
from shopcrawl.config import ShopcrawlConfig
from shopcrawl.distributed.run import RunCoordinator
from shopcrawl.downloadermiddlewares.ratelimit import BanBook
from shopcrawl.runs import (
    FATAL_STAT,
    LISTING_GAP_STAT,
    STATUS_STAT,
    SUMMARY_STAT,
    abandoned_reason,
    final_record,
    summary_line,
    this_process,
)
from shopcrawl.stores import open_store
from shopcrawl.stores.base import RunRecord, Store

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
# Stats that add up across the workers of a distributed run.
_ADDITIVE = (
    "shopcrawl/api/",
    "shopcrawl/item/",
    "shopcrawl/detail/",
    "shopcrawl/listing/bad_rows",
    "shopcrawl/store/",
    "shopcrawl/ban/count",
    "retry/count",
)


def worker_counters(crawler: Crawler) -> dict[str, float]:
    """This worker's additive counters, summed across the workers of a distributed run."""
    assert crawler.stats is not None
    counters: dict[str, float] = {
        key: value
        for key, value in crawler.stats.get_stats().items()
        if key.startswith(_ADDITIVE) and isinstance(value, int | float) and not isinstance(value, bool)
    }
    counters["shopcrawl/ban/wait_seconds"] = round(BanBook.for_crawler(crawler).waited_seconds, 3)
    return counters


class RunLifecycle:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.store: Store = open_store(ShopcrawlConfig.from_settings(crawler.settings).store_uri)
        self.record: RunRecord | None = None  # the final record, once the run is closed here
        self._open = False
        self._loop: task.LoopingCall | None = None
        # Whether the store held items of this shop when the run started: an incremental crawl of a
        # shop it never held reads nothing (a first crawl spends no store reads).
        self.shop_stored = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        ext = cls.for_crawler(crawler)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> Self:
        """The crawl's one instance, shared with the store pipeline."""
        existing = getattr(crawler, "_shopcrawl_lifecycle", None)
        if existing is None:
            existing = cls(crawler)
            crawler._shopcrawl_lifecycle = existing  # type: ignore[attr-defined]
        return existing

    @property
    def is_open(self) -> bool:
        """Whether the store is open and the run record started (the store pipeline opens it)."""
        return self._open

    @property
    def coordinator(self) -> RunCoordinator | None:
        return getattr(self.crawler, "_shopcrawl_run", None)

    async def open_run(self) -> Store:
        """Open the store, abandon the seller's dead runs, start this run's record (off the reactor)."""
        spider: Any = self.crawler.spider
        now = datetime.now(UTC)
        run = RunRecord(
            run_id=spider.run_id,
            platform=spider.platform,
            seller_id=spider.seller_id,
            started_at=spider.started_at,
            heartbeat_at=now,
            owner="" if self.coordinator is not None else this_process(),
        )
        abandoned = await deferred_to_future(threads.deferToThread(self._open_blocking, run, now))
        for run_id, why in abandoned:
            logger.warning("Marked run %s of seller %s %s", run_id, run.seller_id, why)
        self._open = True
        self._loop = task.LoopingCall(self._beat)
        self._loop.start(HEARTBEAT_SECONDS, now=False)
        return self.store

    def _open_blocking(self, run: RunRecord, now: datetime) -> list[tuple[str, str]]:
        self.store.open()
        self.shop_stored = self.store.count_items(run.platform, run.seller_id) > 0
        abandoned = []
        for other in self.store.running_runs(run.platform, run.seller_id):
            why = None if other.run_id == run.run_id else abandoned_reason(other, now)
            if why and self.store.mark_abandoned(other.run_id, f"{why}; found by run {run.run_id}", now):
                abandoned.append((other.run_id, why))
        self.store.start_run(run)
        return abandoned

    def _beat(self) -> object:
        spider: Any = self.crawler.spider
        d = threads.deferToThread(self.store.heartbeat, spider.run_id, datetime.now(UTC))
        d.addErrback(lambda failure: logger.warning("Run heartbeat not written: %s", failure.value))
        return d

    async def spider_closed(self, reason: str) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if not self._open:
            return
        try:
            run = await self._finish(reason)
        finally:
            await deferred_to_future(threads.deferToThread(self.store.close))
        if run is None:
            return
        stats = self.crawler.stats
        assert stats is not None
        if run.coverage is not None:
            stats.set_value("shopcrawl/coverage", round(run.coverage * 100, 3))
        stats.set_value("shopcrawl/run_id", run.run_id)
        stats.set_value(STATUS_STAT, run.status)
        summary = summary_line(run)
        stats.set_value(SUMMARY_STAT, summary)
        logger.info("%s", summary)
        self.record = run
        await self.crawler.signals.send_catch_log_async(shopcrawl_signals.run_finished, run=run)

    def _close_shared(
        self, coordinator: RunCoordinator, counters: dict[str, float]
    ) -> tuple[dict[str, Any], int | None, int] | None:
        """For the one worker that closes a distributed run: the summed counters, declared total and
        items listed. None when the run goes on without this worker."""
        stats = self.crawler.stats
        assert stats is not None
        fatal = stats.get_value(FATAL_STAT)
        if coordinator.check_state() != "ok":
            logger.warning("Run %s lost its state in Redis; it is not closed here", coordinator.run_id)
            return None
        coordinator.push_counters(counters)
        queued, leased = coordinator.pending()  # this worker's leases went back at scheduler close
        if not fatal and (queued or leased):
            logger.info("Worker leaves run %s with work left for the others", coordinator.run_id)
            return None
        if not coordinator.try_close():
            logger.info("Run %s is closed by another worker", coordinator.run_id)
            return None
        shared: dict[str, Any] = dict(coordinator.counters())
        if fatal:
            shared[FATAL_STAT] = fatal
        gap = coordinator.listing_gap()  # found by whichever worker's listing ran out
        if gap:
            shared[LISTING_GAP_STAT] = gap
        declared, listed = coordinator.declared_total(), coordinator.listed_count()
        coordinator.compact()
        return shared, declared, listed

    async def _finish(self, reason: str) -> RunRecord | None:
        """The final record written to the store, or None when another worker closes the run."""
        spider: Any = self.crawler.spider
        stats = self.crawler.stats
        assert stats is not None
        counters = worker_counters(self.crawler)
        stats.set_value("shopcrawl/ban/wait_seconds", counters["shopcrawl/ban/wait_seconds"])
        coordinator = self.coordinator
        shared: dict[str, Any]
        if coordinator is None:
            declared, listed, shared = (
                spider.ledger.declared_total(),
                spider.listed_count(),
                stats.get_stats(),
            )
        else:
            try:
                closing = self._close_shared(coordinator, counters)
            except redis.RedisError as exc:
                logger.error(
                    "Cannot close run %s without Redis (%s); it stays open for the other workers",
                    coordinator.run_id,
                    exc,
                )
                return None
            if closing is None:
                return None
            shared, declared, listed = closing
        tally = await deferred_to_future(threads.deferToThread(self.store.tally, spider.run_id))
        run = final_record(
            spider,
            declared_total=declared,
            listed=listed,
            tally=tally,
            stats=shared,
            ban_wait_seconds=float(shared.get("shopcrawl/ban/wait_seconds", 0.0)),
            close_reason=reason,
        )
        await deferred_to_future(threads.deferToThread(self.store.finish_run, run))
        delisted, relisted = await deferred_to_future(threads.deferToThread(self.store.apply_lifecycle, run))
        stats.set_value("shopcrawl/lifecycle/delisted", delisted)
        stats.set_value("shopcrawl/lifecycle/relisted", relisted)
        if delisted or relisted:
            logger.info("Run %s: %d items delisted, %d relisted", run.run_id, delisted, relisted)
        return run

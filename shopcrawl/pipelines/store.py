"""Last pipeline: batched, idempotent writes to the store chosen by ``SHOPCRAWL_STORE``.

Writes run in a worker thread, never on the reactor. A batch goes out when it holds
``SHOPCRAWL_STORE_BATCH`` items or every ``SHOPCRAWL_STORE_FLUSH_SECONDS``; the item that fills
a batch waits for its write, which bounds the memory held. The last batch is flushed on close,
then the run record is finished and the summary line logged.
"""

from __future__ import annotations

import logging
from typing import Any, Self

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.defer import deferred_from_coro, deferred_to_future
from twisted.internet import defer, task, threads

from shopcrawl.config import ShopcrawlConfig
from shopcrawl.distributed.run import RunCoordinator
from shopcrawl.downloadermiddlewares.ratelimit import BanBook
from shopcrawl.items import Reject, ShopItem
from shopcrawl.runs import FATAL_STAT, SUMMARY_STAT, final_record, summary_line
from shopcrawl.stores import open_store
from shopcrawl.stores.base import RunRecord, Store

logger = logging.getLogger(__name__)

_ADDITIVE = (
    "shopcrawl/api/",
    "shopcrawl/item/",
    "shopcrawl/detail/",
    "shopcrawl/store/",
    "shopcrawl/ban/count",
    "retry/count",
)


_STORE_COUNTERS = {
    "round_trips": "shopcrawl/store/round_trips",
    "escaped_keys": "shopcrawl/store/escaped_keys",
}


def bans_waited(counters: dict[str, Any]) -> float:
    return float(counters.get("shopcrawl/ban/wait_seconds", 0.0))


class StorePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config = ShopcrawlConfig.from_settings(crawler.settings)
        self.store: Store | None = None
        self.items: list[ShopItem] = []
        self.rejects: list[Reject] = []
        self._loop: task.LoopingCall | None = None
        self._lock = defer.DeferredLock()  # one write at a time; close waits for the last

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def open_spider(self) -> None:
        spider = self.crawler.spider
        self.store = open_store(self.config.store_uri)
        self.store.open()
        self.store.start_run(
            RunRecord(
                run_id=spider.run_id,  # type: ignore[union-attr]
                platform=spider.platform,  # type: ignore[union-attr]
                seller_id=spider.seller_id,  # type: ignore[union-attr]
                started_at=spider.started_at,  # type: ignore[union-attr]
            )
        )
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(self.config.store_flush_seconds, now=False)

    async def process_item(self, item: object) -> object:
        if isinstance(item, ShopItem):
            self.items.append(item)
        elif isinstance(item, Reject):
            self.rejects.append(item)
        else:
            return item
        if len(self.items) + len(self.rejects) >= self.config.store_batch:
            await self.flush()
        if isinstance(item, Reject):
            raise DropItem(f"rejected ({item.reason}); kept in the store's rejects", log_level="WARNING")
        return item

    async def flush(self) -> None:
        await deferred_to_future(self._lock.acquire())
        try:
            await self._flush()
        finally:
            self._lock.release()

    async def _flush(self) -> None:
        items, rejects = self.items, self.rejects
        if not items and not rejects:
            return
        self.items, self.rejects = [], []
        try:
            await deferred_to_future(threads.deferToThread(self._write, items, rejects))
        except Exception as exc:
            # Keep the batch: it is written by the next flush, or reported as lost at close.
            self.items[:0], self.rejects[:0] = items, rejects
            self._fail(
                f"store write failed ({exc}); {len(items)} items and {len(rejects)} rejects not stored"
            )
            return
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value("shopcrawl/store/items", len(items))
        stats.inc_value("shopcrawl/store/rejects", len(rejects))
        stats.inc_value("shopcrawl/store/flushes")
        for attribute, key in _STORE_COUNTERS.items():  # kept by stores that have them (MongoDB)
            if hasattr(self.store, attribute):
                stats.set_value(key, getattr(self.store, attribute))
        coordinator = self._coordinator()
        if coordinator is not None:
            stored = [i.num_iid for i in items] + [r.num_iid for r in rejects if r.num_iid is not None]
            coordinator.stored(stored, self._counters())

    def _write(self, items: list[ShopItem], rejects: list[Reject]) -> None:
        assert self.store is not None
        if items:
            self.store.write_items(items)
        if rejects:
            self.store.write_rejects(rejects)

    def _fail(self, line: str) -> None:
        stats, engine = self.crawler.stats, self.crawler.engine
        assert stats is not None and engine is not None
        if not stats.get_value(FATAL_STAT):
            logger.critical("shopcrawl stopped: %s", line)
            stats.set_value(FATAL_STAT, line)
            if engine.spider is not None and engine._slot is not None and engine._slot.closing is None:
                deferred_from_coro(engine.close_spider_async(reason="fatal_error"))

    def _coordinator(self) -> RunCoordinator | None:
        return getattr(self.crawler, "_shopcrawl_run", None)

    def _counters(self) -> dict[str, float]:
        """This worker's additive counters, summed across the workers of a distributed run."""
        assert self.crawler.stats is not None
        counters: dict[str, float] = {
            key: value
            for key, value in self.crawler.stats.get_stats().items()
            if key.startswith(_ADDITIVE) and isinstance(value, int | float) and not isinstance(value, bool)
        }
        counters["shopcrawl/ban/wait_seconds"] = round(BanBook.for_crawler(self.crawler).waited_seconds, 3)
        return counters

    def _tick(self) -> object:
        return deferred_from_coro(self.flush())

    async def close_spider(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        await self.flush()
        if self.items or self.rejects:
            logger.critical("%d items and %d rejects could not be stored", len(self.items), len(self.rejects))
        assert self.store is not None and self.crawler.stats is not None
        spider: Any = self.crawler.spider
        stats = self.crawler.stats
        counters = self._counters()
        stats.set_value("shopcrawl/ban/wait_seconds", counters["shopcrawl/ban/wait_seconds"])
        coordinator = self._coordinator()
        if coordinator is None:
            run = final_record(
                spider,
                spider.ledger.declared_total(),
                spider.listed_count(),
                stats.get_stats(),
                bans_waited(counters),
            )
        else:
            coordinator.push_counters(counters)
            queued, leased = coordinator.pending()
            own = coordinator.unacked()
            fatal = stats.get_value(FATAL_STAT)
            if not fatal and (queued or leased > own):
                logger.info("Worker leaves run %s with work left for the others", coordinator.run_id)
                await deferred_to_future(threads.deferToThread(self.store.close))
                return
            if not coordinator.try_close():
                logger.info("Run %s is closed by another worker", coordinator.run_id)
                await deferred_to_future(threads.deferToThread(self.store.close))
                return
            shared = coordinator.counters()
            if fatal:
                shared[FATAL_STAT] = fatal
            run = final_record(
                spider, coordinator.declared_total(), coordinator.listed_count(), shared, bans_waited(shared)
            )
        if run.coverage is not None:
            self.crawler.stats.set_value("shopcrawl/coverage", round(run.coverage * 100, 3))
        self.crawler.stats.set_value("shopcrawl/run_id", run.run_id)
        self.crawler.stats.set_value("shopcrawl/status", run.status)
        await deferred_to_future(threads.deferToThread(self.store.finish_run, run))
        await deferred_to_future(threads.deferToThread(self.store.close))
        summary = summary_line(run)
        self.crawler.stats.set_value(SUMMARY_STAT, summary)
        logger.info("%s", summary)

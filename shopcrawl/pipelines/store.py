"""Last pipeline: batched, idempotent writes to the store chosen by ``SHOPCRAWL_STORE``.

Writes run in a worker thread, never on the reactor. A batch goes out when it holds
``SHOPCRAWL_STORE_BATCH`` items or every ``SHOPCRAWL_STORE_FLUSH_SECONDS``; the item that fills
a batch waits for its write, which bounds the memory held. The last batch is flushed on close. The
store itself, and the run record, belong to :class:`shopcrawl.extensions.run.RunLifecycle`.
"""

from __future__ import annotations

import logging
from typing import Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.defer import deferred_from_coro, deferred_to_future
from twisted.internet import defer, task, threads

from shopcrawl.config import ShopcrawlConfig
from shopcrawl.distributed.run import RunCoordinator
from shopcrawl.extensions.run import RunLifecycle, worker_counters
from shopcrawl.items import Reject, ShopItem
from shopcrawl.runs import FATAL_STAT
from shopcrawl.stores.base import Store

logger = logging.getLogger(__name__)

_STORE_COUNTERS = {
    "round_trips": "shopcrawl/store/round_trips",
    "escaped_keys": "shopcrawl/store/escaped_keys",
}


class StorePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config = ShopcrawlConfig.from_settings(crawler.settings)
        self.lifecycle = RunLifecycle.for_crawler(crawler)
        self.store: Store | None = None
        self.items: list[ShopItem] = []
        self.rejects: list[Reject] = []
        self._loop: task.LoopingCall | None = None
        self._lock = defer.DeferredLock()  # one write at a time; close waits for the last

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        pipeline = cls(crawler)
        crawler.signals.connect(pipeline.spider_idle, signal=signals.spider_idle)
        return pipeline

    def spider_idle(self) -> None:
        """A Redis worker with nothing left to do waits for its last items' acknowledgements, which come
        with their write: write them now rather than at the next flush tick, then look again at once
        (a fleet worker otherwise spent SHOPCRAWL_STORE_FLUSH_SECONDS at the end of every shop)."""
        if (self.items or self.rejects) and self.lifecycle.coordinator is not None:
            deferred_from_coro(self.flush()).addBoth(self._wake)

    def _wake(self, result: object) -> object:
        slot = getattr(self.crawler.engine, "_slot", None)
        if slot is not None and slot.closing is None:
            slot.nextcall.schedule()
        return result

    async def open_spider(self) -> None:
        self.store = await self.lifecycle.open_run()
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
        # Items arrive while a slow write holds the lock: write what piled up in batches of at most
        # SHOPCRAWL_STORE_BATCH, so no single write grows with the store's slowness.
        while self.items or self.rejects:
            if not await self._write_batch():
                return

    async def _write_batch(self) -> bool:
        size = self.config.store_batch
        items, rejects = self.items[:size], self.rejects[: max(0, size - len(self.items))]
        del self.items[: len(items)], self.rejects[: len(rejects)]
        try:
            await deferred_to_future(threads.deferToThread(self._write, items, rejects))
        except Exception as exc:
            # Keep the batch: it is written by the next flush, or reported as lost at close.
            self.items[:0], self.rejects[:0] = items, rejects
            left = f"{len(self.items)} items and {len(self.rejects)} rejects"
            self._fail(f"store write failed ({exc}); {left} not stored")
            return False
        logger.debug("Wrote %d items and %d rejects to the store", len(items), len(rejects))
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value("shopcrawl/store/items", len(items))
        stats.inc_value("shopcrawl/store/rejects", len(rejects))
        stats.inc_value("shopcrawl/store/flushes")
        for attribute, key in _STORE_COUNTERS.items():  # kept by stores that have them (MongoDB)
            if hasattr(self.store, attribute):
                stats.set_value(key, getattr(self.store, attribute))
        coordinator: RunCoordinator | None = self.lifecycle.coordinator
        if coordinator is not None:
            stored = [i.num_iid for i in items] + [r.num_iid for r in rejects if r.num_iid is not None]
            coordinator.stored(stored, worker_counters(self.crawler))
        return True

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

    def _tick(self) -> object:
        return deferred_from_coro(self.flush())

    async def close_spider(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        await self.flush()
        if self.items or self.rejects:
            logger.critical("%d items and %d rejects could not be stored", len(self.items), len(self.rejects))

"""Keeps a distributed worker alive while the run has work anywhere, and beats its heartbeat.

Every second: refresh the heartbeat, requeue the leases of dead workers, and wake the engine so
that requests other workers queued are picked up. When the spider goes idle it may close only
if nothing is queued and nothing is leased anywhere, including this worker's own unacknowledged
leases (their items are still on their way to the store).
"""

from __future__ import annotations

import logging
from typing import Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider, NotConfigured
from twisted.internet import task

from shopcrawl.distributed.run import RunCoordinator

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class DistributedRun:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._loop: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.get("REDIS_URL"):
            raise NotConfigured("REDIS_URL is not set: single-process mode")
        ext = cls(crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    @property
    def coordinator(self) -> RunCoordinator | None:
        return getattr(self.crawler, "_shopcrawl_run", None)

    def spider_opened(self) -> None:
        self._loop = task.LoopingCall(self.tick)
        self._loop.start(TICK_SECONDS, now=True)

    def spider_closed(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def tick(self) -> None:
        coordinator = self.coordinator
        if coordinator is None:
            return
        self.check_state(coordinator)
        coordinator.beat()
        coordinator.reclaim_dead()
        engine = self.crawler.engine
        slot = getattr(engine, "_slot", None)
        if slot is not None and slot.closing is None:
            slot.nextcall.schedule()

    def check_state(self, coordinator: RunCoordinator) -> bool:
        """Notice a Redis that lost the run's state; redo the listing if this worker is the one to.
        True when the state was lost (the run is far from over)."""
        state = coordinator.check_state()
        if state == "ok":
            return False
        if state == "recovered":
            logger.warning(
                "Redis lost the state of run %s (restarted empty, or failed over to an empty replica): "
                "redoing its listing under the same run id; items already stored stay stored once",
                coordinator.run_id,
            )
            engine, spider = self.crawler.engine, self.crawler.spider
            assert engine is not None and spider is not None
            engine.crawl(spider.first_listing())  # type: ignore[attr-defined]
        else:
            logger.warning(
                "Redis lost the state of run %s; another worker redoes its listing", coordinator.run_id
            )
        return True

    def spider_idle(self) -> None:
        coordinator = self.coordinator
        if coordinator is None:
            return
        if self.check_state(coordinator):
            raise DontCloseSpider
        coordinator.reclaim_dead()
        if not coordinator.unacked():  # idle here: any lease of this worker in Redis is an orphan
            coordinator.requeue_orphans()
        queued, leased = coordinator.pending()
        if queued or leased or coordinator.unacked():
            raise DontCloseSpider
        logger.info("Run %s has nothing queued or leased anywhere: this worker is done", coordinator.run_id)

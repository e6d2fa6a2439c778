"""Logs crawl progress at INFO every ``SHOPCRAWL_PROGRESS_INTERVAL`` seconds, and a warning when the seller's
authorisation cannot be refreshed and expires within 7 days."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from twisted.internet import task

from shopcrawl.config import ShopcrawlConfig
from shopcrawl.downloadermiddlewares.ratelimit import BanBook

logger = logging.getLogger(__name__)

AUTH_WARNING_EVERY = 600.0  # s between two progress-log warnings that the authorisation expires soon


class Progress:
    def __init__(self, crawler: Crawler, interval: float) -> None:
        self.crawler = crawler
        self.interval = interval
        self.started = time.monotonic()
        self._loop: task.LoopingCall | None = None
        self._warned = -AUTH_WARNING_EVERY

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        interval = ShopcrawlConfig.from_settings(crawler.settings).progress_interval
        if not interval:
            raise NotConfigured("SHOPCRAWL_PROGRESS_INTERVAL is 0")
        ext = cls(crawler, interval)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self) -> None:
        self.started = time.monotonic()
        self._loop = task.LoopingCall(self.log)
        self._loop.start(self.interval, now=False)

    def spider_closed(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def line(self) -> str:
        stats = self.crawler.stats
        spider = self.crawler.spider
        assert stats is not None and spider is not None
        declared = spider.ledger.declared_total()  # type: ignore[attr-defined]
        stored = int(stats.get_value("shopcrawl/store/items", 0))
        done = stored + int(stats.get_value("shopcrawl/store/rejects", 0))
        elapsed = time.monotonic() - self.started
        eta = "?"
        if declared and done:
            left = max(0, declared - done)
            eta = str(timedelta(seconds=round(left * elapsed / done)))
        bans = BanBook.for_crawler(self.crawler)
        total = "?" if declared is None else f"{declared:,}"
        return (
            f"listing pages {getattr(spider, 'pages_done', 0):,}/{getattr(spider, 'pages_total', 0):,}; "
            f"items listed {spider.listed_count():,}/{total}, "  # type: ignore[attr-defined]
            f"detailed {int(stats.get_value('shopcrawl/detail/items', 0)):,}, stored {stored:,}/{total}; "
            f"API calls {int(stats.get_value('shopcrawl/api/calls', 0)):,}; "
            f"bans {int(stats.get_value('shopcrawl/ban/count', 0))} ({bans.waited_seconds:.1f} s); ETA {eta}"
        )

    def log(self) -> None:
        logger.info("Progress: %s", self.line())
        auth = getattr(self.crawler, "_shopcrawl_auth", None)
        warning = auth.warning() if auth is not None else ""
        if warning and time.monotonic() - self._warned >= AUTH_WARNING_EVERY:
            self._warned = time.monotonic()
            logger.warning("Authorisation: %s", warning)

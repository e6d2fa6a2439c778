"""The scheduler: Scrapy's own in one process; with ``REDIS_URL`` set, the leased Redis scheduler."""

from __future__ import annotations

from typing import Any

from scrapy.core.scheduler import Scheduler
from scrapy.crawler import Crawler


class ShopScheduler(Scheduler):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        if crawler.settings.get("REDIS_URL"):
            from shopcrawl.distributed.scheduler import LeasedScheduler

            return LeasedScheduler.from_crawler(crawler)
        return super().from_crawler(crawler)

"""The scheduler: Scrapy's own in one process; with ``REDIS_URL`` set, the leased Redis scheduler.

In one process it also counts the detail calls waiting in its queue: the most at once is the stat
``shopcrawl/detail/backlog_max``. Detail calls go before listing pages (``DETAIL_PRIORITY`` in
:mod:`shopcrawl.spiders.shop`), so it stays near ``CONCURRENT_REQUESTS`` listing pages' worth of
them whatever the shop's size, instead of every detail call of the shop.
"""

from __future__ import annotations

from typing import Any

from scrapy import Request
from scrapy.core.scheduler import Scheduler
from scrapy.crawler import Crawler

from shopcrawl.http import META_KEY

BACKLOG_MAX_STAT = "shopcrawl/detail/backlog_max"


def is_detail(request: Request) -> bool:
    """Whether ``request`` is a detail call (the spider's state for one names the items it details)."""
    state = request.meta.get(META_KEY)
    return isinstance(state, dict) and "listed" in state


class ShopScheduler(Scheduler):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        if crawler.settings.get("REDIS_URL"):
            from shopcrawl.distributed.scheduler import LeasedScheduler

            return LeasedScheduler.from_crawler(crawler)
        return super().from_crawler(crawler)

    _details = 0  # detail calls in the queue now

    def enqueue_request(self, request: Request) -> bool:
        if not super().enqueue_request(request):
            return False
        if is_detail(request):
            self._details += 1
            assert self.stats is not None
            self.stats.max_value(BACKLOG_MAX_STAT, self._details)
        return True

    def next_request(self) -> Request | None:
        request = super().next_request()
        if request is not None and is_detail(request):
            self._details -= 1
        return request

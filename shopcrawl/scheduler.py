"""The scheduler: Scrapy's own in one process; with ``REDIS_URL`` set, the leased Redis scheduler.

In one process it also counts the detail calls waiting in its queue: the most at once is the stat
``shopcrawl/detail/backlog_max``. Detail calls go before listing pages and at most
``CONCURRENT_REQUESTS`` listing pages are out at once (:mod:`shopcrawl.spiders.shop`), so it stays
under that many listing pages' worth of them whatever the shop's size.

:class:`ListingDupeFilter` is the single-process dupefilter: Scrapy's, for listing calls only.
"""

from __future__ import annotations

from typing import Any

from scrapy import Request
from scrapy.core.scheduler import Scheduler
from scrapy.crawler import Crawler
from scrapy.dupefilters import RFPDupeFilter

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


class ListingDupeFilter(RFPDupeFilter):
    """Scrapy's dupefilter, for listing calls only. In one process a detail call cannot repeat: the
    ledger gives each listed item to one listing page, each page is processed once, a batch halved
    after an error names new sets of items, and retries are sent unfiltered. Remembering the
    fingerprint of every detail call (1688 and the gateways make one per item) would only hold
    memory that grows with the shop. (Distributed workers filter everything, in Redis: there a page
    processed again after a worker died plans its detail calls again.)"""

    def request_seen(self, request: Request) -> bool:
        return not is_detail(request) and super().request_seen(request)

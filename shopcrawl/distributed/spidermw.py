"""Acknowledges a leased request once its callback has finished and all it produced is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

from shopcrawl.distributed.scheduler import LEASE_META
from shopcrawl.items import RawRecord, Reject, ShopItem


class LeaseAckMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def process_spider_output(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        coordinator = getattr(self.crawler, "_shopcrawl_run", None)
        lease = response.meta.get(LEASE_META)
        if coordinator is None or not lease:
            async for output in result:
                yield output
            return
        try:
            async for output in result:
                if isinstance(output, RawRecord | ShopItem | Reject) and isinstance(output.num_iid, int):
                    coordinator.expect(lease, output.num_iid)
                elif isinstance(output, Request):
                    coordinator.expect_request(lease, output)
                yield output
        finally:
            # Every request this callback made is queued in Redis by now; its items are on their way
            # to the store, and the lease is acknowledged when the last of them is written. A callback
            # that raised is done too (Scrapy logs its error): what it did not produce is missing
            # from the run's tally, and running it again would fail again.
            coordinator.output_done(lease)

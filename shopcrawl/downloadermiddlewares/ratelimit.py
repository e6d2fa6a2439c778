"""Holds API calls back until they may be sent: code-7 bans, retry backoff and the QPS limit.

Waiting happens in ``process_request``, before signing, so the signature and timestamp are made
when the wait is over. A ban seen on one API stops every call to that API (every API for an
app-wide ban) until it ends; nothing is sent to it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Self

from scrapy import Request
from scrapy.crawler import Crawler

from shopcrawl.config import ShopcrawlConfig
from shopcrawl.http import META_KEY, api_method

logger = logging.getLogger(__name__)

ALL_APIS = "*"
NOT_BEFORE = "not_before"  # key in request.meta[META_KEY]: the unix time a retry may go out


class BanBook:
    """The bans in force, by API method (``*`` = the whole app key), in monotonic time."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self.waited_seconds = 0.0
        self.bans_seen = 0

    def ban(self, method: str, seconds: float, *, app_wide: bool) -> float:
        key = ALL_APIS if app_wide else method
        now = time.monotonic()
        until = now + seconds
        current = self._until.get(key, 0.0)
        if until > current:
            # Count each banned second once, however many in-flight calls report the same ban.
            self.waited_seconds += until - max(now, current)
            self._until[key] = until
        self.bans_seen += 1
        return until

    def remaining(self, method: str) -> float:
        until = max(self._until.get(method, 0.0), self._until.get(ALL_APIS, 0.0))
        return max(0.0, until - time.monotonic())

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> BanBook:
        book = getattr(crawler, "_shopcrawl_banbook", None)
        if book is None:
            book = cls()
            crawler._shopcrawl_banbook = book  # type: ignore[attr-defined]
        return book


class RateLimitMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        config = ShopcrawlConfig.from_settings(crawler.settings)
        self.bans = BanBook.for_crawler(crawler)
        self.interval = 1.0 / config.qps if config.qps else 0.0
        self._next_slot = 0.0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        method = api_method(request)
        if method is None:
            return
        not_before = request.meta[META_KEY].pop(NOT_BEFORE, None)
        if not_before is not None:
            await asyncio.sleep(max(0.0, not_before - time.time()))
        # A ban can start, or be extended, while this request waits: loop until none is in force.
        for _ in range(1000):
            delay = self.bans.remaining(method)
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        if self.interval:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)

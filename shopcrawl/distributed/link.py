"""The crawl's Redis connections, and how every Redis caller survives an outage.

Every command, script and pipeline, sync or asyncio, goes through one :class:`Outage`: a failed call
(connection refused or lost, timeout, a server still loading its data, a read-only replica) is
retried with backoff, the outage is logged once when it starts and once when it ends, and the caller
carries on as if nothing happened. An outage longer than ``SHOPCRAWL_REDIS_OUTAGE_SECONDS`` stops the
worker: one line naming Redis, exit status 1. Nothing else in shopcrawl handles Redis errors.

The sync client serves the scheduler, the leases, the listing ledger and the run coordinator; the
asyncio client serves the rate limit and bans, so a call waiting for its send slot never holds the
reactor. While Redis is down the sync callers block the reactor (nothing can be leased, queued or
acknowledged meanwhile); the store keeps writing in its own thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff
from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# Errors that mean "Redis is not there right now" (BusyLoadingError is a ConnectionError).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, socket.timeout)
MAX_DELAY = 2.0


class RedisOutage(redis.ConnectionError):
    """Redis stayed unreachable longer than the outage limit."""


class Outage:
    """One clock for an outage, shared by every Redis caller of a worker."""

    def __init__(
        self, name: str, limit_seconds: float, on_give_up: Callable[[str], None] | None = None
    ) -> None:
        self.name = name
        self.limit = limit_seconds
        self.on_give_up = on_give_up
        self.down_since: float | None = None
        self.gave_up: str | None = None
        self.outages = 0
        self._failures = 0
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> float:
        """Note a failed call; the delay before trying again, or RedisOutage past the limit.

        A single failure that the next try mends (a pooled connection the server closed while it
        restarted) is not an outage worth a log line; a second failure in a row is."""
        with self._lock:
            now = time.monotonic()
            if self.gave_up is not None:
                raise RedisOutage(self.gave_up)
            if self.down_since is None:
                self.down_since, self._failures = now, 0
            self._failures += 1
            if self._failures == 2:
                self.outages += 1
                logger.warning(
                    "Redis at %s unreachable (%s); waiting up to %g s for it",
                    self.name,
                    _why(error),
                    self.limit,
                )
            if now - self.down_since < self.limit:
                delay: float = min(MAX_DELAY, 0.05 * 2 ** min(self._failures, 8))
                return delay * random.uniform(0.5, 1.0) if self._failures > 1 else 0.0  # jitter, not crypto
            self.gave_up = (
                f"Redis at {self.name} unreachable for {self.limit:g} s ({_why(error)}); check the server "
                "and REDIS_URL, or raise SHOPCRAWL_REDIS_OUTAGE_SECONDS"
            )
        if self.on_give_up is not None:
            self.on_give_up(self.gave_up)
        raise RedisOutage(self.gave_up)

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            if self._failures >= 2:
                logger.warning(
                    "Redis at %s is back after %.1f s", self.name, time.monotonic() - self.down_since
                )
            self.down_since = None


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


def _final(error: BaseException, is_retryable: Callable[[Exception], bool] | None) -> bool:
    """An error that no retry should wait out: the outage limit is spent, or redis-py says so."""
    if isinstance(error, RedisOutage):
        return True
    return is_retryable is not None and isinstance(error, Exception) and not is_retryable(error)


class OutageRetry(redis.retry.Retry):
    """redis-py's retry policy for the sync client: wait out the outage (see :class:`Outage`)."""

    def __init__(self, outage: Outage) -> None:
        super().__init__(NoBackoff(), retries=10**9, supported_errors=TRANSIENT)
        self.outage = outage

    def __deepcopy__(self, memo: dict[int, Any]) -> OutageRetry:
        return self  # redis-py copies its retry policy; the outage clock must stay shared

    def call_with_retry(
        self,
        do: Callable[[], _T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> _T:
        failures = 0
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                if _final(error, is_retryable):
                    raise
                failures += 1
                fail(error, failures) if with_failure_count else fail(error)
                time.sleep(self.outage.failed(error))
                continue
            self.outage.succeeded()
            return result


class AsyncOutageRetry(redis.asyncio.retry.Retry):
    """The same policy for the asyncio client: waiting never holds the event loop."""

    def __init__(self, outage: Outage) -> None:
        super().__init__(NoBackoff(), retries=10**9, supported_errors=TRANSIENT)  # type: ignore[arg-type]
        self.outage = outage

    def __deepcopy__(self, memo: dict[int, Any]) -> AsyncOutageRetry:
        return self

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[_T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> _T:
        failures = 0
        while True:
            try:
                result = await do()
            except self._supported_errors as error:
                if _final(error, is_retryable):
                    raise
                failures += 1
                await (fail(error, failures) if with_failure_count else fail(error))
                await asyncio.sleep(self.outage.failed(error))
                continue
            self.outage.succeeded()
            return result


class RedisLink:
    """A worker's Redis: one sync and one asyncio client behind one outage clock."""

    def __init__(self, url: str, outage: Outage) -> None:
        self.url = url
        self.outage = outage
        options: dict[str, Any] = {
            "socket_connect_timeout": 5,
            "socket_timeout": 10,
            "health_check_interval": 0,
        }
        self.sync: redis.Redis = redis.Redis.from_url(url, retry=OutageRetry(outage), **options)
        self._aio_options = options
        self._aio: redis.asyncio.Redis | None = None

    @property
    def aio(self) -> redis.asyncio.Redis:
        """The asyncio client, made on first use inside the reactor's event loop."""
        if self._aio is None:
            self._aio = redis.asyncio.Redis.from_url(
                self.url, retry=AsyncOutageRetry(self.outage), **self._aio_options
            )
        return self._aio

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> RedisLink | None:
        """The crawl's link (None without ``REDIS_URL``). Giving up on Redis stops the crawl."""
        url = crawler.settings.get("REDIS_URL")
        if not url:
            return None
        link: RedisLink | None = getattr(crawler, "_shopcrawl_redis", None)
        if link is None:
            from shopcrawl.config import ShopcrawlConfig
            from shopcrawl.stores import redact_uri

            limit = ShopcrawlConfig.from_settings(crawler.settings).redis_outage_seconds
            outage = Outage(redact_uri(str(url)), limit, lambda line: _stop_crawl(crawler, line))
            link = cls(str(url), outage)
            crawler._shopcrawl_redis = link  # type: ignore[attr-defined]
        return link


def _stop_crawl(crawler: Crawler, line: str) -> None:
    """Stop the crawl with ``line`` as its fatal error; exit status 1 even if the engine is stuck."""
    from scrapy.utils.defer import deferred_from_coro
    from twisted.internet import reactor, task

    from shopcrawl.runs import FATAL_STAT

    stats, engine = crawler.stats, crawler.engine
    if stats is None or stats.get_value(FATAL_STAT):
        return
    logger.critical("shopcrawl stopped: %s", line)
    stats.set_value(FATAL_STAT, line)

    def hard_exit() -> None:  # the close itself needed Redis and hung: leave now, never hang
        import os
        import sys

        print(f"shopcrawl stopped: {line}", file=sys.stderr, flush=True)
        os._exit(1)

    task.deferLater(reactor, HARD_EXIT_SECONDS, hard_exit)

    def close() -> None:
        slot = engine._slot if engine is not None and engine.spider is not None else None
        if engine is not None and slot is not None and slot.closing is None:
            deferred_from_coro(engine.close_spider_async(reason="fatal_error"))

    task.deferLater(reactor, 0, close)  # not from inside the failing Redis call


HARD_EXIT_SECONDS = 30.0

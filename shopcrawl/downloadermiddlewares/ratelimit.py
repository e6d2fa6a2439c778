"""Holds API calls back until they may be sent: code-7 bans, retry backoff and the QPS limit.

Waiting happens in ``process_request``, before signing, so the signature and timestamp are made
when the wait is over. A ban seen on one API stops every call to that API (every API for an
app-wide ban) until it ends; nothing is sent to it meanwhile.

With ``REDIS_URL`` set, bans and the QPS limit are shared by every worker of every machine through
Redis: the limit is a GCRA over Redis server time, per app key, and a ban seen by any worker
pauses all of them. ``SHOPCRAWL_QPS`` is then the limit across all workers.

Calls are spaced at 95% of the limit (GCRA), and a last check right before each send caps any
1-second window: a worker whose event loop was held up past its slot waits for the window instead
of sending in a burst. Locally the window holds send times, capped at 94% of the limit. With
Redis it holds each call from its approval until 1 s after its answer (capped at 98%): the
approval is asynchronous, so the bytes may leave a while after it (the reply waiting in a busy
event loop, a GC pass, the GIL held by the store's writer thread, a descheduled process), and the
API sees each call between its approval and its answer. Counting it over that whole span bounds
every 1-second window at the API, whatever those delays.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import deque
from typing import Self
from weakref import WeakKeyDictionary

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

from shopcrawl.config import crawl_config, credentials_from_settings
from shopcrawl.distributed import keys as K
from shopcrawl.distributed import lua
from shopcrawl.distributed.link import RedisLink
from shopcrawl.http import META_KEY, api_method

logger = logging.getLogger(__name__)

ALL_APIS = "*"
NOT_BEFORE = "not_before"  # key in request.meta[META_KEY]: the unix time a retry may go out
QPS_HEADROOM = 0.95  # GCRA spacing, as a share of SHOPCRAWL_QPS
WINDOW_HEADROOM = 0.94  # hard cap of any 1-second window of send times (one worker), as a share of QPS
# With Redis, the window holds each call from its approval until its answer, a bound on when the API
# can have seen it whatever the delays; it needs no headroom for them, only for the API's rounding.
SHARED_WINDOW_HEADROOM = 0.98
MAX_WAITS = 10_000  # bound on the wait loop of one request
IN_FLIGHT_MARGIN = 5.0  # s past DOWNLOAD_TIMEOUT after which a call never reported back stops counting


class BanBook:
    """The bans in force, by API method (``*`` = the whole app key).

    Locally in monotonic time; with Redis, in Redis (shared by all workers), through the asyncio
    client so that no ban check holds the reactor."""

    def __init__(self, link: RedisLink | None = None, app_key: str = "") -> None:
        self._until: dict[str, float] = {}
        self.waited_seconds = 0.0
        self.link = link
        self.app_key = app_key
        self._ban = link.aio.register_script(lua.BAN) if link is not None else None

    async def ban(self, method: str, seconds: float, *, app_wide: bool) -> bool:
        """Set or extend a ban; True when no ban was in force for that key before (a new ban).

        One round trip with Redis: the workers still sending learn of the ban that much sooner."""
        key = ALL_APIS if app_wide else method
        if self._ban is not None:
            # Count each banned second once, however many workers and calls report the ban.
            added_ms, left_ms = await self._ban(
                keys=[K.ban_key(self.app_key, key)], args=[int(seconds * 1000)]
            )
            self.waited_seconds += int(added_ms) / 1000
            return int(left_ms) == 0
        now = time.monotonic()
        until = now + seconds
        current = self._until.get(key, 0.0)
        if until > current:
            self.waited_seconds += until - max(now, current)
            self._until[key] = until
        return current <= now

    async def remaining(self, method: str) -> float:
        if self.link is not None:
            keys = [K.ban_key(self.app_key, m) for m in (method, ALL_APIS)]
            ttls = [await self.link.aio.pttl(key) for key in keys]
            return max(0, *(int(t) for t in ttls)) / 1000
        until = max(self._until.get(method, 0.0), self._until.get(ALL_APIS, 0.0))
        return max(0.0, until - time.monotonic())

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> BanBook:
        book = getattr(crawler, "_shopcrawl_banbook", None)
        if book is None:
            link = RedisLink.for_crawler(crawler)
            creds = credentials_from_settings(crawler.settings, needs_session=False) if link else None
            app_key = creds.app_key if creds is not None else ""
            book = cls(link, app_key)
            crawler._shopcrawl_banbook = book  # type: ignore[attr-defined]
        return book


class RateLimitMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        config = crawl_config(crawler)
        self.bans = BanBook.for_crawler(crawler)
        self.interval = 1.0 / (config.qps * QPS_HEADROOM) if config.qps else 0.0
        headroom = WINDOW_HEADROOM if self.bans.link is None else SHARED_WINDOW_HEADROOM
        self.window_cap = max(1, math.floor(config.qps * headroom)) if config.qps else 0
        self._next_slot = 0.0
        self._sent: deque[float] = deque()
        link = self.bans.link
        self._throttle = link.aio.register_script(lua.THROTTLE) if link is not None else None
        self._window = link.aio.register_script(lua.WINDOW) if link is not None else None
        self._done = link.aio.register_script(lua.DONE) if link is not None else None
        timeout = crawler.settings.getfloat("DOWNLOAD_TIMEOUT", 180)
        self.in_flight_ms = int((timeout + IN_FLIGHT_MARGIN) * 1000)
        self._in_flight: WeakKeyDictionary[Request, str] = WeakKeyDictionary()  # request -> member
        self._reports: set[asyncio.Task[None]] = set()

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
        auth = getattr(self.crawler, "_shopcrawl_auth", None)
        if auth is not None:
            await auth.ready()  # nothing goes out while the seller's credential is being refreshed
        if self._throttle is not None:
            await self._shared_slot(request, method)
            return
        # A ban can start, or be extended, while this request waits for its slot or the window: the
        # last check before it goes is for a ban, with nothing awaited between it and the send.
        slot_taken = not self.interval
        for _ in range(MAX_WAITS):
            delay = await self.bans.remaining(method)
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if not slot_taken:
                slot_taken = True
                now = time.monotonic()
                slot = max(now, self._next_slot)
                self._next_slot = slot + self.interval
                if slot > now:
                    await asyncio.sleep(slot - now)
                continue
            wait = self._local_window()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            return

    def _local_window(self) -> float:
        """Seconds to wait for a place in this worker's 1-second window (0: taken, send now)."""
        if not self.window_cap:
            return 0.0
        now = time.monotonic()
        while self._sent and self._sent[0] <= now - 1.0:
            self._sent.popleft()
        if len(self._sent) < self.window_cap:
            self._sent.append(now)
            return 0.0
        return self._sent[0] + 1.0 - now + 0.001

    def process_response(self, request: Request, response: Response) -> Response:
        self._landed(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._landed(request)

    def _landed(self, request: Request) -> None:
        """The call's answer (or error) is in: from now it counts in the shared window for 1 s.

        Reported in the background, so the response never waits for Redis; the report carries how
        long ago (this worker's clock) the answer came, so a busy event loop does not lengthen it."""
        member = self._in_flight.pop(request, None)
        if member is None or self._done is None:
            return
        task = asyncio.get_running_loop().create_task(self._report(member, time.monotonic()))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _report(self, member: str, landed: float) -> None:
        assert self._done is not None
        age_ms = int((time.monotonic() - landed) * 1000)
        try:
            await self._done(keys=[K.window_key(self.bans.app_key)], args=[member, age_ms])
        except Exception as exc:  # the call keeps counting until its in-flight limit: safe, only slower
            logger.debug("could not report a call's answer to the shared window: %s", exc)

    async def _shared_slot(self, request: Request, method: str) -> None:
        """Wait out shared bans, then take this app key's next send slot (GCRA in Redis)."""
        assert self._throttle is not None
        app_key = self.bans.app_key
        keys = [K.gcra_key(app_key), K.ban_key(app_key, method), K.ban_key(app_key, ALL_APIS)]
        keys.append(K.calls_prefix(app_key))
        for _ in range(MAX_WAITS):
            wait_ms, reserved = await self._throttle(keys=keys, args=[self.interval * 1000])
            await asyncio.sleep(int(wait_ms) / 1000)
            if int(reserved):
                break
        if self.window_cap:
            await self._shared_window(request, app_key, method)

    async def _shared_window(self, request: Request, app_key: str, method: str) -> None:
        """The last check: no ban in force, and a place in the shared 1-second window, held until
        the answer is in."""
        assert self._window is not None
        member = secrets.token_hex(8)
        keys = [K.window_key(app_key), K.ban_key(app_key, method), K.ban_key(app_key, ALL_APIS)]
        args: list[int | str] = [self.window_cap, member, self.in_flight_ms]
        for _ in range(MAX_WAITS):
            wait_ms = int(await self._window(keys=keys, args=args))
            if not wait_ms:
                self._in_flight[request] = member
                return
            await asyncio.sleep(wait_ms / 1000)

"""Maps every API outcome through one explicit table; the dialect decodes and classifies.

For TOP (errors arrive inside HTTP 200 bodies):

=============================================  =================================================
outcome                                        what the crawl does
=============================================  =================================================
success envelope                               a :class:`ApiResponse` with ``payload``
code 7 with "ban will last for N more seconds"  wait exactly N s (nothing sent to that API), resend
``isp.*``, HTTP 5xx/408/429, timeouts,         bounded retries (``RETRY_TIMES``) with exponential
connection errors, truncated or garbled JSON   backoff; after the last one the callback gets an error
``isv.*``                                      the callback gets ``error`` to record; no retry
27 (``session-expired``, or past the stored     pause the calls, refresh the stored credential once,
expiry); 1688 ``401`` past the stored expiry   resend; stop with the login hint if that fails
25, 27, 29, 11, ... or a ban > max wait        stop the crawl at once with one line naming the fix
=============================================  =================================================

Other dialects map their own codes onto the same classes (see each ``platforms`` package); an HTTP
status a dialect has no error body for follows the HTTP rows above.
"""

from __future__ import annotations

import logging
import random
import time
from typing import NoReturn, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.defer import deferred_from_coro

from shopcrawl.auth.crawl import CrawlAuth
from shopcrawl.config import crawl_config
from shopcrawl.downloadermiddlewares.ratelimit import NOT_BEFORE, BanBook
from shopcrawl.http import GAVE_UP_CODE, META_KEY, ApiResponse, api_method
from shopcrawl.platforms.base import ApiError, ErrorClass, HttpStatus
from shopcrawl.runs import FATAL_STAT

logger = logging.getLogger(__name__)

MAX_BAN_RESENDS = 50  # per request: a ban that never ends is reported, not waited forever
MAX_AUTH_RESENDS = 3  # per request: sends with a refreshed credential


class ApiErrorsMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config = crawl_config(crawler)
        self.dialect = self.config.dialect
        self.bans = BanBook.for_crawler(crawler)
        self.fatal: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def _inc(self, key: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key)

    async def process_response(self, request: Request, response: Response) -> Response | Request:
        method = api_method(request)
        if method is None:
            return response
        if self.fatal:
            raise IgnoreRequest(self.fatal)
        self._inc("shopcrawl/api/calls")
        self._inc(f"shopcrawl/api/calls/{method}")
        try:
            payload, error = self.dialect.decode(method, response.status, response.body)
        except HttpStatus:
            if response.status >= 500 or response.status in (408, 429):
                return self._retry(request, f"http_{response.status}")
            self._stop(f"{self.config.api_url} answered HTTP {response.status}; check SHOPCRAWL_API_URL")
        except (ValueError, UnicodeDecodeError):
            return self._retry(request, "bad_json")
        if error is None:
            self._inc(f"shopcrawl/api/ok/{method}")
            return self._api_response(response, payload=payload)
        self._inc(f"shopcrawl/api/error/{error.code}")
        kind = self.dialect.classify(error, max_ban_wait=self.config.max_ban_wait)
        if kind is ErrorClass.BAN:
            return await self._resend_after_ban(request, method, error)
        if kind is ErrorClass.RETRY:
            return self._retry(request, f"api_{error.sub_code or error.code}", error=error)
        if kind is ErrorClass.RECORD:
            return self._api_response(response, error=error)
        if kind is ErrorClass.AUTH:
            return await self._resend_after_renewal(request, error)
        hint = self.dialect.fatal_hint(error, max_ban_wait=self.config.max_ban_wait)
        self._stop(f"{error.describe()} -> {hint}")

    def process_exception(self, request: Request, exception: Exception) -> Response | Request | None:
        if api_method(request) is None or isinstance(exception, IgnoreRequest):
            return None
        if self.fatal:
            raise IgnoreRequest(self.fatal)
        return self._retry(request, type(exception).__name__)

    @staticmethod
    def _api_response(
        response: Response, *, payload: dict[str, object] | None = None, error: ApiError | None = None
    ) -> ApiResponse:
        new = response.replace(cls=ApiResponse, encoding="utf-8")
        new.payload = payload
        new.error = error
        return new

    def _retry(self, request: Request, reason: str, error: ApiError | None = None) -> Request | Response:
        spider = self.crawler.spider
        assert spider is not None
        retry = get_retry_request(request, spider=spider, reason=reason, logger=logger)
        if retry is not None:
            attempt = retry.meta["retry_times"]
            delay = min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1))
            retry.meta[META_KEY] = {
                **request.meta[META_KEY],
                NOT_BEFORE: time.time() + delay * random.uniform(0.5, 1.0),
            }
            return retry
        msg = f"gave up after {request.meta.get('retry_times', 0)} retries: {reason}"
        gave_up = ApiError(GAVE_UP_CODE, msg, source=self.dialect.source)
        if error is not None:
            gave_up = ApiError(
                GAVE_UP_CODE, msg, error.sub_code, error.sub_msg, error.request_id, error.source
            )
        self._inc("shopcrawl/api/gave_up")
        return self._gave_up(request, gave_up)

    @staticmethod
    def _gave_up(request: Request, error: ApiError) -> ApiResponse:
        response = ApiResponse(request.url, status=200, body=b"{}", request=request, encoding="utf-8")
        response.error = error
        return response

    async def _resend_after_ban(self, request: Request, method: str, error: ApiError) -> Request:
        seconds = error.ban_seconds or 1
        if await self.bans.ban(method, seconds, app_wide=error.app_wide):
            self._inc("shopcrawl/ban/count")
            logger.info(
                "%s banned for %d s (%s); holding every call to it until then",
                method,
                seconds,
                error.sub_code,
            )
        too_many = f"{method} stayed banned through {MAX_BAN_RESENDS} waits; check the app's quota"
        return self._resend(request, "ban_resends", MAX_BAN_RESENDS, too_many)

    def _resend(self, request: Request, counter: str, limit: int, too_many: str) -> Request:
        """The same call again, not filtered and spending no retry; stop once sent ``limit`` times so."""
        resends = int(request.meta[META_KEY].get(counter, 0)) + 1
        if resends > limit:
            self._stop(too_many)
        retry = request.copy()
        retry.dont_filter = True
        retry.meta[META_KEY] = {**request.meta[META_KEY], counter: resends}
        return retry

    async def _resend_after_renewal(self, request: Request, error: ApiError) -> Request:
        """The credential was refused: resend once it is refreshed (by this call, or by another call or
        worker that got there first); stop with the login hint when it cannot be."""
        line = await CrawlAuth.for_crawler(self.crawler).renew(request, error)
        if line is not None:
            self._stop(line)
        too_many = f"{error.describe()} -> refused after {MAX_AUTH_RESENDS} refreshed credentials"
        return self._resend(request, "auth_resends", MAX_AUTH_RESENDS, too_many)

    def _stop(self, line: str) -> NoReturn:
        """Stop the crawl at once with one line that names what to fix."""
        if self.fatal is None:
            self.fatal = line
            logger.critical("shopcrawl stopped: %s", line)
            assert self.crawler.stats is not None and self.crawler.engine is not None
            self.crawler.stats.set_value(FATAL_STAT, line)
            deferred_from_coro(self.crawler.engine.close_spider_async(reason="fatal_error"))
        raise IgnoreRequest(line)

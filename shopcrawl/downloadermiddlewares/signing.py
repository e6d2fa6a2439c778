"""Authorises API calls at send time, and only then, in the way of the crawl's API dialect.

A queued request carries business params only. When the downloader is about to send it, this
middleware has the dialect add credentials, a fresh timestamp and the signature: TOP and 1688 sign
into the POST body; a gateway puts its key and secret in the query string. When the response or the
error comes back, the request gets its unsigned URL and body back, and so does the response: a retry,
a re-queued request, a log line or an error message never holds a credential or a stale timestamp.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self
from weakref import WeakKeyDictionary

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

from shopcrawl.auth.crawl import CrawlAuth
from shopcrawl.config import crawl_dialect
from shopcrawl.http import api_method


class SigningMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.dialect = crawl_dialect(crawler)
        self.auth = CrawlAuth.for_crawler(crawler)
        self._unsigned: WeakKeyDictionary[Request, tuple[str, bytes]] = WeakKeyDictionary()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        if api_method(request) is None or request in self._unsigned:
            return
        url, body = self.dialect.authorise(request, self.auth.sign_with(request), datetime.now(UTC))
        self._unsigned[request] = (request.url, request.body)
        request._set_url(url)
        request._set_body(body)

    def _restore(self, request: Request) -> str | None:
        unsigned = self._unsigned.pop(request, None)
        if unsigned is None:
            return None
        url, body = unsigned
        request._set_url(url)
        request._set_body(body)
        return url

    def process_response(self, request: Request, response: Response) -> Response:
        url = self._restore(request)
        if url is not None and response.url != url:
            response = response.replace(url=url)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        signed = request.url
        url = self._restore(request)
        if url is not None and signed != url:
            # A download error's message can hold the sent URL (e.g. "Getting <url> took longer than
            # 30 seconds."): a gateway's key and secret ride in it, so it gets the unsigned one.
            exception.args = tuple(
                arg.replace(signed, url) if isinstance(arg, str) else arg for arg in exception.args
            )

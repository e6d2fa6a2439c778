"""Signs TOP calls at send time, and only then.

A queued request carries business params only. When the downloader is about to send it, this
middleware adds ``app_key``, ``session``, a fresh GMT+8 ``timestamp``, ``v``, ``format``,
``sign_method`` and ``sign`` to the POST body (never the URL, which Scrapy logs). When the
response or the error comes back, the body is restored to its unsigned form, so a retry or a
re-queued request never holds a credential or a stale timestamp.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self
from urllib.parse import parse_qsl, urlencode
from weakref import WeakKeyDictionary

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

from shopcrawl.config import credentials_from_settings
from shopcrawl.http import api_method
from shopcrawl.platforms import top


class SigningMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.credentials = credentials_from_settings(crawler.settings)
        self._unsigned: WeakKeyDictionary[Request, bytes] = WeakKeyDictionary()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        if api_method(request) is None or request in self._unsigned:
            return
        business = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        creds = self.credentials
        params = top.signed_params(
            business,
            app_key=creds.app_key,
            secret=creds.secret,
            session=creds.session,
            sign_method=creds.sign_method,
            now=datetime.now(UTC),
        )
        self._unsigned[request] = request.body
        request._set_body(urlencode(params).encode("utf-8"))

    def _restore(self, request: Request) -> None:
        body = self._unsigned.pop(request, None)
        if body is not None:
            request._set_body(body)

    def process_response(self, request: Request, response: Response) -> Response:
        self._restore(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._restore(request)

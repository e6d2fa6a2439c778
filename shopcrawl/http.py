"""The request/response shapes shared by the spider and the downloader middlewares."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from scrapy import Request
from scrapy.http import TextResponse

from shopcrawl.platforms.top import ApiError

META_KEY = "shopcrawl"
GAVE_UP_CODE = -1  # the code of the synthetic error a callback gets once a call's retries are spent


def api_method(request: Request) -> str | None:
    """The TOP method a request calls, or None for requests that are not API calls."""
    meta = request.meta.get(META_KEY)
    return meta.get("api") if isinstance(meta, dict) else None


def api_request(
    url: str, method: str, params: dict[str, str], *, callback: Any, meta: dict[str, Any], priority: int = 0
) -> Request:
    """An unsigned API call: business params only, so its fingerprint is stable and it never goes
    stale in a queue. The signing middleware adds credentials, timestamp and signature at send time."""
    body = urlencode({"method": method, **params})
    return Request(
        url,
        method="POST",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
        callback=callback,
        meta={META_KEY: {"api": method, **meta}},
        priority=priority,
    )


class TopResponse(TextResponse):
    """A decoded TOP response: ``payload`` on success, ``error`` for an error to record."""

    payload: dict[str, Any] | None = None
    error: ApiError | None = None

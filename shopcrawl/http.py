"""The request/response shapes shared by the spider and the downloader middlewares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.http import TextResponse

from shopcrawl.platforms.base import GAVE_UP_CODE, ApiError, Call

if TYPE_CHECKING:
    from shopcrawl.platforms.base import Dialect

__all__ = ["GAVE_UP_CODE", "META_KEY", "ApiResponse", "api_method", "api_request"]

META_KEY = "shopcrawl"


def api_method(request: Request) -> str | None:
    """The API method a request calls, or None for requests that are not API calls."""
    meta = request.meta.get(META_KEY)
    return meta.get("api") if isinstance(meta, dict) else None


def api_request(
    url: str,
    method: str,
    params: dict[str, str],
    *,
    callback: Any,
    meta: dict[str, Any],
    priority: int = 0,
    dialect: Dialect | None = None,
) -> Request:
    """An unsigned API call (TOP's unless ``dialect`` says otherwise): business params only, so its
    fingerprint is stable and it never goes stale in a queue. The signing middleware adds
    credentials, timestamp and signature at send time."""
    if dialect is None:
        from shopcrawl.platforms import get_dialect

        dialect = get_dialect("top")
    return dialect.request(
        url,
        Call(method, params),
        callback=callback,
        meta={META_KEY: {"api": method, **meta}},
        priority=priority,
    )


class ApiResponse(TextResponse):
    """A decoded API response: ``payload`` on success, ``error`` for an error to record."""

    payload: dict[str, Any] | None = None
    error: ApiError | None = None

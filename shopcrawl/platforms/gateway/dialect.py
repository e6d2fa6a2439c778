"""A gateway as a dialect: crawl ANY Taobao or 1688 shop through ``item_search_shop`` (listing, see
:mod:`.listing`) and ``item_get`` (one item a call), api-protocols.md §3 and §7.2.

A queued request is ``GET <base>/<platform>/<api>/?<business params>``: no key, no secret. The key and
secret ride in the query string, so :meth:`GatewayDialect.authorise` adds them only when the request is
sent (the signing middleware then restores the unsigned URL on the request and the response).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from scrapy import Request

from shopcrawl.items import ShopItem
from shopcrawl.platforms.base import (
    ApiError,
    Call,
    Credentials,
    EnvelopeError,
    ErrorClass,
    HttpStatus,
    fingerprint,
    positive_id,
)
from shopcrawl.platforms.gateway import items as gw_items
from shopcrawl.platforms.gateway import protocol as gw
from shopcrawl.platforms.gateway.listing import PriceWalk, SortUnion

LISTED_FIELDS = ("sales", "price", "promotion_price")
# The listed fields that show a change (an incremental crawl compares their fingerprint).
CHANGE_FIELDS = ("price", "promotion_price", "sales", "quantity")


class GatewayDialect:
    name = "gateway"
    source = gw.SOURCE
    production_url = gw.PRODUCTION_URL
    page_size_max = 200  # not sent: the gateway picks its page size and each answer states it
    page_cap_default = 10**9  # not used: the depth cap is the answer's page_count (at most 50 pages)
    detail_batch_max = 1
    needs_session = False  # SHOPCRAWL_APP_KEY / SHOPCRAWL_APP_SECRET are the gateway key and secret

    def __init__(self, platform: str) -> None:
        if platform not in ("taobao", "1688"):
            raise ValueError(f"the gateway crawls taobao or 1688 shops, not {platform!r}")
        self.platform = platform

    def lister(self, seller_id: str, *, page_size: int, page_cap: int) -> PriceWalk | SortUnion:
        return PriceWalk(seller_id) if self.platform == "1688" else SortUnion(seller_id)

    def detail_call(self, ids: Sequence[str], listed: Mapping[str, Mapping[str, Any]]) -> Call:
        if len(ids) != 1:
            raise ValueError(f"item_get takes one item a call, got {len(ids)}")
        params = {"num_iid": ids[0]}
        if self.platform == "taobao":
            params["is_promotion"] = "1"
        return Call(gw.DETAIL_API, params)

    def detail_records(self, payload: Mapping[str, Any]) -> list[Any]:
        return [gw.detail_record(payload)]

    def record_id(self, record: Any) -> str | None:
        number = positive_id(record, "num_iid")
        return str(number) if isinstance(number, int) else None

    def listed_id(self, row: Any) -> int | str:
        return positive_id(row, "num_iid")

    def listing_fingerprint(self, row: Mapping[str, Any]) -> str:
        return fingerprint(row, CHANGE_FIELDS)

    def listed_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The listing's sales and prices, and when the item was listed (``modified`` stands in
        with it when ``item_get`` has no ``modified_time``)."""
        fields = {k: row[k] for k in LISTED_FIELDS if k in row}
        fields[gw_items.LISTED_AT] = datetime.now(UTC).isoformat(timespec="seconds")
        return fields

    def request(
        self, base_url: str, call: Call, *, callback: Any, meta: dict[str, Any], priority: int = 0
    ) -> Request:
        """``GET <base>/<platform>/<api>/?<business params>``, params sorted: a stable fingerprint."""
        url = f"{base_url.rstrip('/')}/{self.platform}/{call.api}/?{urlencode(sorted(call.params.items()))}"
        return Request(url, method="GET", callback=callback, meta=meta, priority=priority)

    def authorise(self, request: Request, creds: Credentials, now: datetime) -> tuple[str, bytes]:
        """The key and secret go into the query string at send time, never into a queued request."""
        separator = "&" if "?" in request.url else "?"
        auth = urlencode({"key": creds.app_key, "secret": creds.secret})
        return f"{request.url}{separator}{auth}", request.body

    def decode(self, api: str, status: int, body: bytes) -> tuple[dict[str, Any] | None, ApiError | None]:
        if status != 200:
            raise HttpStatus(status)  # gateways answer their errors in HTTP 200 (§3.4)
        payload, error = gw.unwrap(api, gw.loads(body))
        return (None if payload is None else gw.plain(payload)), error

    def classify(self, error: ApiError, *, max_ban_wait: float) -> ErrorClass:
        return gw.classify(error)

    def fatal_hint(self, error: ApiError, *, max_ban_wait: float) -> str:
        return gw.fatal_hint(error)

    def to_item(
        self, raw: Mapping[str, Any], listed: Mapping[str, Any], *, seller_id: str, run_id: str
    ) -> ShopItem:
        return gw_items.item_from_raw(raw, listed, platform=self.platform, seller_id=seller_id, run_id=run_id)


__all__ = ["EnvelopeError", "GatewayDialect"]

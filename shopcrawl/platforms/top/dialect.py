"""TOP as a dialect: list a seller's own shop with ``taobao.items.onsale.get``, detail it with
``taobao.items.seller.list.get`` in batches of 20, sign every call in its POST body.

Listing pages ordered by ``modified:asc``. When a window declares more items than the paging cap
allows, it pages up to the cap, then opens the next window at the ``modified`` time of the last
item it got (``start_modified``, inclusive), and so on: every window stays under the cap, and an
item listed twice at a boundary second is counted once (by the ledger).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from scrapy import Request

from shopcrawl.items import ShopItem
from shopcrawl.platforms.base import (
    ApiError,
    Call,
    Credentials,
    EnvelopeError,
    ErrorClass,
    HttpStatus,
    ListingPage,
    fingerprint,
    positive_id,
)
from shopcrawl.platforms.top import items as top_items
from shopcrawl.platforms.top import protocol as top

logger = logging.getLogger(__name__)

LISTED_FIELDS = ("sold_quantity", "modified", "list_time", "approve_status")
# The listed fields that show a change (an incremental crawl compares their fingerprint).
CHANGE_FIELDS = ("modified", "price", "num", "sold_quantity")
FORM = "application/x-www-form-urlencoded;charset=UTF-8"


class TopLister:
    def __init__(self, *, page_size: int, page_cap: int) -> None:
        self.page_size = page_size
        self.page_cap = page_cap

    def call(self, window_start: str | None, page_no: int) -> Call:
        params = {
            "fields": ",".join(top.LISTING_FIELDS),
            "page_no": str(page_no),
            "page_size": str(self.page_size),
            "order_by": "modified:asc",
        }
        if window_start is not None:
            params["start_modified"] = window_start
        return Call(top.LISTING_METHOD, params, {"window_start": window_start, "page_no": page_no})

    def first(self) -> Call:
        return self.call(None, 1)

    def on_page(self, call: Call, payload: Mapping[str, Any], listed_count: int) -> ListingPage:
        window_start, page_no = call.meta["window_start"], call.meta["page_no"]
        try:
            raw_items = top.unwrap_list(payload, "items", "item")
            total = int(payload.get("total_results") or 0)
        except (TypeError, ValueError) as exc:
            raise EnvelopeError(str(exc)) from None
        page = ListingPage(raw_items, f"{window_start}|{page_no}")
        if page_no == 1:
            page.queries = 1
            if window_start is None:
                page.declared_total = total
            page.follow += [self.call(window_start, p) for p in range(2, self._last_page(total) + 1)]
        if total > self.page_cap and page_no == self._last_page(total) and raw_items:
            page.follow += self._next_window(window_start, raw_items[-1])
        return page

    def _last_page(self, total: int) -> int:
        reachable = min(total, self.page_cap - self.page_cap % self.page_size)
        return max(1, math.ceil(reachable / self.page_size))

    def _next_window(self, window_start: str | None, last_item: Any) -> list[Call]:
        """The window that starts at the last capped item's modified time (inclusive)."""
        last_modified = str(last_item.get("modified", "")) if isinstance(last_item, dict) else ""
        if not last_modified:
            raise EnvelopeError(
                f"the last item at the paging cap has no modified time (window {window_start})"
            )
        if last_modified == window_start:
            # More items share this one second than the cap lets us page: skip past it, loudly.
            logger.warning(
                "More than %d items share modified=%s; the API cannot page them all; "
                "coverage will show the gap",
                self.page_cap,
                last_modified,
            )
            last_modified = top.format_timestamp(top.parse_time(last_modified) + timedelta(seconds=1))
        return [self.call(last_modified, 1)]


class TopDialect:
    name = "top"
    platform = "taobao"
    source = "TOP"
    production_url = top.PRODUCTION_URL
    page_size_max = top.PAGE_SIZE_MAX
    page_cap_default = 20000
    detail_batch_max = top.DETAIL_BATCH_MAX
    needs_session = True

    def __init__(self, *, fetch_desc: bool = False) -> None:
        self.fetch_desc = fetch_desc

    def lister(self, seller_id: str, *, page_size: int, page_cap: int) -> TopLister:
        return TopLister(page_size=page_size, page_cap=page_cap)

    def detail_call(self, ids: Sequence[str], listed: Mapping[str, Mapping[str, Any]]) -> Call:
        fields = list(top.DETAIL_FIELDS) + (["desc"] if self.fetch_desc else [])
        return Call(top.DETAIL_METHOD, {"fields": ",".join(fields), "num_iids": ",".join(ids)})

    def detail_records(self, payload: Mapping[str, Any]) -> list[Any]:
        return top.unwrap_list(payload, "items", "item")

    def record_id(self, record: Any) -> str | None:
        return str(record.get("num_iid", "")) if isinstance(record, dict) else None

    def listed_id(self, row: Any) -> int | str:
        return positive_id(row, "num_iid")

    def listing_fingerprint(self, row: Mapping[str, Any]) -> str:
        return fingerprint(row, CHANGE_FIELDS)

    def listed_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in LISTED_FIELDS if k in row}

    def request(
        self, base_url: str, call: Call, *, callback: Any, meta: dict[str, Any], priority: int = 0
    ) -> Request:
        """A POST whose form body holds the method and the business params only."""
        return Request(
            base_url,
            method="POST",
            body=urlencode({"method": call.api, **call.params}),
            headers={"Content-Type": FORM},
            callback=callback,
            meta=meta,
            priority=priority,
        )

    def authorise(self, request: Request, creds: Credentials, now: datetime) -> tuple[str, bytes]:
        """System params and the signature go into the POST body, never the URL (which Scrapy logs)."""
        business = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        params = top.signed_params(
            business,
            app_key=creds.app_key,
            secret=creds.secret,
            session=creds.session,
            sign_method=creds.sign_method,
            now=now,
        )
        return request.url, urlencode(params).encode("utf-8")

    def decode(self, api: str, status: int, body: bytes) -> tuple[dict[str, Any] | None, ApiError | None]:
        if status != 200:
            raise HttpStatus(status)  # TOP answers API errors in HTTP 200
        return top.unwrap(json.loads(body), api)

    def classify(self, error: ApiError, *, max_ban_wait: float) -> ErrorClass:
        return top.classify(error, max_ban_wait=max_ban_wait)

    def fatal_hint(self, error: ApiError, *, max_ban_wait: float) -> str:
        return top.fatal_hint(error, max_ban_wait=max_ban_wait)

    def to_item(
        self, raw: Mapping[str, Any], listed: Mapping[str, Any], *, seller_id: str, run_id: str
    ) -> ShopItem:
        return top_items.item_from_raw(
            raw, listed, platform=self.platform, seller_id=seller_id, run_id=run_id
        )

"""1688 AOP as a dialect: list your own 1688 shop with ``alibaba.product.list.get`` (20 a page, by ID
ascending), detail it with ``alibaba.product.get``, one product a call; sign every call in its POST body.

The listing's first page gives the declared total (``totalRecords``) and the page size the gateway
actually serves (``len(result)``, whatever ``pageSize`` asked for); it plans every other page at once,
so a page processed on any worker, or twice, plans nothing new. No paging cap is documented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from scrapy import Request

from shopcrawl.items import ShopItem
from shopcrawl.platforms.aop import items as aop_items
from shopcrawl.platforms.aop import protocol as aop
from shopcrawl.platforms.base import (
    ApiError,
    Call,
    Credentials,
    EnvelopeError,
    ErrorClass,
    ListingPage,
    fingerprint,
    positive_id,
)

FORM = "application/x-www-form-urlencoded;charset=UTF-8"
STATUS_LIST = '["published"]'
# Listing fields kept with the item (JSON-safe scalars only: they ride in the request's meta).
LISTED_FIELDS = ("subject", "status", "modifyTime", "createTime", "referencePrice")
# The listed fields that show a change (an incremental crawl compares their fingerprint).
CHANGE_FIELDS = ("modifyTime", "referencePrice", "amountOnSale")  # amountOnSale: in saleInfo


class AopLister:
    def __init__(self, *, page_size: int) -> None:
        self.page_size = page_size

    def call(self, page_no: int) -> Call:
        params = {
            "pageNo": str(page_no),
            "pageSize": str(self.page_size),
            "orderByCondition": "ID",
            "orderByType": "ASC",
            "statusList": STATUS_LIST,
        }
        return Call(aop.LISTING_API, params, {"page_no": page_no})

    def first(self) -> Call:
        return self.call(1)

    def on_page(self, call: Call, payload: Mapping[str, Any], listed_count: int) -> ListingPage:
        page_no = int(call.meta["page_no"])
        rows = payload.get("result")
        if not isinstance(rows, list):
            raise EnvelopeError(f"result is not a list: {type(rows).__name__}")
        page = ListingPage(rows, f"page|{page_no}")
        if page_no != 1:
            return page
        total = payload.get("totalRecords")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise EnvelopeError(f"totalRecords is not a non-negative integer: {total!r:.40}")
        page.queries = 1
        page.declared_total = total
        served = len(rows)
        if served == 0:
            if total > 0:
                raise EnvelopeError(f"the first page is empty but totalRecords is {total}")
            return page
        page.follow = [self.call(p) for p in range(2, math.ceil(total / served) + 1)]
        return page


class AopDialect:
    name = "1688"
    platform = "1688"
    source = aop.SOURCE
    production_url = aop.PRODUCTION_URL
    page_size_max = aop.PAGE_SIZE_MAX
    page_cap_default = 10**9  # no paging cap is documented for alibaba.product.list.get
    detail_batch_max = aop.DETAIL_BATCH_MAX
    needs_session = True  # SHOPCRAWL_SESSION is the seller's access_token

    def __init__(self, *, fetch_desc: bool = False) -> None:
        self.fetch_desc = fetch_desc  # the description comes with productInfo anyway

    def lister(self, seller_id: str, *, page_size: int, page_cap: int) -> AopLister:
        return AopLister(page_size=page_size)

    def detail_call(self, ids: Sequence[str], listed: Mapping[str, Mapping[str, Any]]) -> Call:
        if len(ids) != 1:
            raise ValueError(f"alibaba.product.get takes one productID a call, not {len(ids)}")
        return Call(aop.DETAIL_API, {"productID": ids[0], "webSite": "1688"})

    def detail_records(self, payload: Mapping[str, Any]) -> list[Any]:
        info = payload.get("productInfo")
        if not isinstance(info, dict):
            raise EnvelopeError(f"productInfo is not an object: {type(info).__name__}")
        return [info]

    def record_id(self, record: Any) -> str | None:
        if not isinstance(record, dict) or record.get("productID") in (None, ""):
            return None
        return str(record["productID"])

    def listed_id(self, row: Any) -> int | str:
        return positive_id(row, "productID")

    def listing_fingerprint(self, row: Mapping[str, Any]) -> str:
        sale = row.get("saleInfo")
        stock = sale.get("amountOnSale") if isinstance(sale, Mapping) else None
        return fingerprint({**row, "amountOnSale": stock}, CHANGE_FIELDS)

    def listed_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in LISTED_FIELDS if isinstance(row.get(k), str | int)}

    def request(
        self, base_url: str, call: Call, *, callback: Any, meta: dict[str, Any], priority: int = 0
    ) -> Request:
        """``POST <base>/param2/1/com.alibaba.product/<api>/`` with the business params as the form
        body: no app key in the path yet, no credential, no timestamp."""
        path = aop.url_path(call.api, "")
        return Request(
            f"{base_url.rstrip('/')}/{path}",
            method="POST",
            body=urlencode(call.params),
            headers={"Content-Type": FORM},
            callback=callback,
            meta=meta,
            priority=priority,
        )

    def authorise(self, request: Request, creds: Credentials, now: datetime) -> tuple[str, bytes]:
        """The app key ends the URL path; ``access_token``, ``_aop_timestamp`` and ``_aop_signature``
        join the POST body (never the URL, which Scrapy logs)."""
        url = request.url + creds.app_key
        path = url[url.rindex("/param2/") + 1 :]  # what is signed: no leading slash, no openapi/
        business = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        params = aop.signed_params(
            business, path=path, secret=creds.secret, access_token=creds.session, now=now
        )
        return url, urlencode(params).encode("utf-8")

    def decode(self, api: str, status: int, body: bytes) -> tuple[dict[str, Any] | None, ApiError | None]:
        return aop.decode(status, body)

    def classify(self, error: ApiError, *, max_ban_wait: float) -> ErrorClass:
        return aop.classify(error)

    def fatal_hint(self, error: ApiError, *, max_ban_wait: float) -> str:
        return aop.fatal_hint(error)

    def to_item(
        self, raw: Mapping[str, Any], listed: Mapping[str, Any], *, seller_id: str, run_id: str
    ) -> ShopItem:
        return aop_items.item_from_raw(
            raw, listed, platform=self.platform, seller_id=seller_id, run_id=run_id
        )

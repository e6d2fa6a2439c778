"""The listing plans of a gateway shop: a union of ``item_search_shop`` queries until the distinct
items reach the shop's ``total_results`` (api-protocols.md §7.2).

One query (a sort order, on 1688 also a price band) serves at most ``page_count`` pages (≤ 50, the
depth cap); a page past it answers ``"2000"``. The page size is the gateway's: each plan reads it
from the answer, never assumes one. Every follow-up call is derived from the page being processed
(and the meta of its own call), so a page processed on any worker, or twice, plans the same calls.

- **1688 walks the price axis** (:class:`PriceWalk`), as TOP's listing walks ``modified``: ``sort=bid``
  (price ascending); page 1 of a query plans its pages 2..n; when the query holds more items than its
  pages reach, its last page opens the next query at ``start_price`` = the last price it reached
  (inclusive; items at that price are listed twice and counted once by the ledger). More items at one
  price than one query can page: the walk skips past that price (+0.01 元), loudly.
- **Taobao has no price filter** (:class:`SortUnion`): ``bid`` and its exact reverse ``_bid`` first
  (together they reach up to twice the cap; ``_bid`` pages only as deep as needed), then ``new``,
  ``sale``, ``_sale`` one page at a time while the distinct items are short of the total; an order is
  dropped once :data:`IDLE_PAGES` pages in a row brought no new item. A shop they cannot reach ends
  incomplete, with the reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from shopcrawl.platforms.base import Call, EnvelopeError, ListingPage
from shopcrawl.platforms.gateway import protocol as gw

logger = logging.getLogger(__name__)

EXTRA_ORDERS = ("new", "sale", "_sale")  # Taobao's other sort orders, in the order they are tried
ONE_FEN = Decimal("0.01")
# An extra sort order is dropped after this many pages in a row brought no new item.
IDLE_PAGES = 3


class Answer:
    """One decoded ``item_search_shop`` page: rows, the query's total, page size and page reach."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        try:
            items = gw.listing_body(payload)
            self.rows = gw.listing_rows(items)
            self.no_result = bool(payload.get("no_result"))
            if self.no_result:
                self.total = self.page_size = self.reach = 0
                return
            self.total = gw.to_int(items.get("total_results"), "total_results")
            size = items.get("page_size")
            self.page_size = gw.to_int(size, "page_size") if size not in (None, "") else len(self.rows)
            count = items.get("page_count")
            page_count = gw.to_int(count, "page_count") if count not in (None, "") else gw.MAX_PAGES
        except ValueError as exc:
            raise EnvelopeError(str(exc)) from None
        if self.page_size <= 0 and self.total > 0:
            raise EnvelopeError(f"page_size {self.page_size} with total_results {self.total}")
        # The pages this query serves: its items, but no deeper than page_count and the depth cap.
        pages = math.ceil(self.total / self.page_size) if self.total > 0 else 0
        self.reach = max(0, min(pages, page_count, gw.MAX_PAGES))

    @property
    def capped(self) -> bool:
        """The query holds more items than its pages reach."""
        return self.total > self.reach * self.page_size


def _page_key(meta: Mapping[str, Any]) -> str:
    return f"{meta['sort']}|{meta.get('start_price') or '-'}|{meta['page']}"


class _GatewayLister:
    first_sort = "bid"

    def __init__(self, seller_id: str) -> None:
        self.seller_id = seller_id

    def call(self, sort: str, page: int, **meta: Any) -> Call:
        params = {"shop_id": self.seller_id, "page": str(page), "sort": sort}
        if meta.get("start_price"):
            params["start_price"] = str(meta["start_price"])
        return Call(gw.LISTING_API, params, {"sort": sort, "page": page, **meta})

    def first(self) -> Call:
        return self.call(self.first_sort, 1)

    def _first_page(self, call: Call, answer: Answer, page: ListingPage) -> None:
        page.queries = 1
        if not call.meta.get("start_price") and call.meta["sort"] == self.first_sort:
            page.declared_total = answer.total
            if answer.no_result:
                logger.warning("The gateway lists no items for shop %s (error_code 2000)", self.seller_id)


class PriceWalk(_GatewayLister):
    """1688: ``sort=bid`` windows along the price axis, each opened at the last price of the one before."""

    def on_page(self, call: Call, payload: Mapping[str, Any], listed_count: int) -> ListingPage:
        meta = call.meta
        answer = Answer(payload)
        page = ListingPage(answer.rows, _page_key(meta))
        start = meta.get("start_price")
        if meta["page"] == 1:
            self._first_page(call, answer, page)
            if answer.no_result:
                return page
            last, more = answer.reach, answer.capped
            page.follow += [
                self.call("bid", p, start_price=start, last=last, more=more) for p in range(2, last + 1)
            ]
        else:
            last, more = int(meta.get("last", 0)), bool(meta.get("more"))
        if more and meta["page"] == last and answer.rows:
            page.follow.append(self._next_window(start, answer.rows[-1], page))
        return page

    def _next_window(self, start: str | None, last_row: Any, page: ListingPage) -> Call:
        raw = last_row.get("price") if isinstance(last_row, dict) else None
        text = gw.to_money(raw)
        try:
            price = Decimal(text or "")
        except InvalidOperation:
            raise EnvelopeError(f"the last item at the depth cap has no usable price: {raw!r:.40}") from None
        if start is not None and price <= Decimal(start):
            # More items share this one price than one query can page: skip past it, loudly.
            logger.warning(
                "More items cost %s 元 than one item_search_shop query can page; the gateway cannot "
                "list them all; coverage will show the gap",
                start,
            )
            page.gap = f"more items at {start} 元 than the gateway's depth cap lets one query page"
            price = Decimal(start) + ONE_FEN
        return self.call("bid", 1, start_price=format(price.quantize(ONE_FEN), "f"))


class SortUnion(_GatewayLister):
    """Taobao: ``bid`` + ``_bid``, then the other sort orders while they bring new items."""

    def on_page(self, call: Call, payload: Mapping[str, Any], listed_count: int) -> ListingPage:
        meta = call.meta
        answer = Answer(payload)
        page = ListingPage(answer.rows, _page_key(meta))
        sort, page_no = meta["sort"], meta["page"]
        if page_no == 1:
            self._first_page(call, answer, page)
        if sort == "bid" and page_no == 1 and not answer.no_result:
            self._plan_price_orders(answer, page)
        elif sort == "_bid" and page_no == meta.get("last") and meta.get("extras"):
            page.follow += self._extra(EXTRA_ORDERS[0], 1, listed_count, int(meta["total"]), page)
        elif sort in EXTRA_ORDERS:
            self._chain(meta, answer, listed_count, page)
        return page

    def _plan_price_orders(self, answer: Answer, page: ListingPage) -> None:
        """``bid`` pages 2..n, and as many ``_bid`` pages as the rest of the shop needs (plus one)."""
        bid_items = answer.reach * answer.page_size
        page.follow += [self.call("bid", p, last=answer.reach) for p in range(2, answer.reach + 1)]
        if not answer.capped:
            return
        rest = answer.total - bid_items
        last = min(answer.reach, math.ceil(rest / answer.page_size) + 1)
        extras = rest > last * answer.page_size
        page.follow += [
            self.call("_bid", p, last=last, extras=extras, total=answer.total) for p in range(1, last + 1)
        ]

    def _chain(self, meta: Mapping[str, Any], answer: Answer, listed_count: int, page: ListingPage) -> None:
        """The next page of an extra order while it brings new items, else the next order."""
        sort, page_no, total = meta["sort"], int(meta["page"]), int(meta["total"])
        if listed_count >= total:
            return
        idle = 0 if listed_count > int(meta.get("seen", -1)) else int(meta.get("idle", 0)) + 1
        if idle < IDLE_PAGES and answer.rows and page_no < answer.reach:
            page.follow.append(self.call(sort, page_no + 1, seen=listed_count, total=total, idle=idle))
            return
        index = EXTRA_ORDERS.index(sort)
        if index + 1 < len(EXTRA_ORDERS):
            page.follow += self._extra(EXTRA_ORDERS[index + 1], 1, listed_count, total, page)
        else:
            orders = ", ".join(("bid", "_bid", *EXTRA_ORDERS))
            page.gap = (
                f"the gateway's depth cap ({answer.reach or '?'} pages of {answer.page_size or '?'} items "
                f"per query) and its sort orders ({orders})"
            )
            logger.warning("The listing has run out of queries: %s reach fewer items than declared", page.gap)

    def _extra(self, sort: str, page_no: int, listed_count: int, total: int, page: ListingPage) -> list[Call]:
        if listed_count >= total:
            return []
        return [self.call(sort, page_no, seen=listed_count, total=total)]

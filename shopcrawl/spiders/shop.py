"""``scrapy crawl shop -a seller_id=<id>``: list every on-sale item, then fetch details in batches.

Listing pages ``taobao.items.onsale.get`` ordered by ``modified:asc``. When a window declares more
items than the paging cap allows, the crawl pages up to the cap, then opens the next window at
the ``modified`` time of the last item it got (``start_modified``, inclusive), and so on: every
window stays under the cap, and an item listed twice at a boundary second is counted once.
Each listing page's new items go to ``taobao.items.seller.list.get`` in batches of 20.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from scrapy import Request, Spider
from scrapy.crawler import Crawler

from shopcrawl.config import ShopcrawlConfig
from shopcrawl.http import GAVE_UP_CODE, META_KEY, TopResponse, api_request
from shopcrawl.items import RawTopItem, Reject
from shopcrawl.ledger import Ledger, LocalLedger
from shopcrawl.platforms import top

logger = logging.getLogger(__name__)

LISTED_FIELDS = ("sold_quantity", "modified", "list_time", "approve_status")


class ShopSpider(Spider):
    name = "shop"
    platform = "taobao"

    def __init__(self, seller_id: str | None = None, run_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not seller_id or not seller_id.strip():
            raise ValueError("seller_id is required: scrapy crawl shop -a seller_id=<seller>")
        self.seller_id = seller_id.strip()
        self.started_at = datetime.now(UTC)
        self.run_id = run_id or f"{self.seller_id}-{self.started_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        self.declared_total: int | None = None
        self.ledger: Ledger = LocalLedger()
        self.pages_total = 0
        self.pages_done = 0
        self.windows = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.config = ShopcrawlConfig.from_settings(crawler.settings)
        return spider

    config: ShopcrawlConfig

    def adopt_run(self, run_id: str, started_at: str, ledger: Ledger) -> None:
        """Join a distributed run: its id, start time and shared listing ledger."""
        self.run_id = run_id
        self.started_at = datetime.fromisoformat(started_at)
        self.ledger = ledger

    def listed_count(self) -> int:
        return self.ledger.listed_count()

    async def start(self) -> AsyncIterator[Request]:
        yield self.first_listing()

    def first_listing(self) -> Request:
        """The listing's first request: at the start, and again for a run whose shared state Redis lost."""
        return self._listing(window_start=None, page_no=1)

    # -- listing -------------------------------------------------------------------------------

    def _listing(self, window_start: str | None, page_no: int) -> Request:
        params = {
            "fields": ",".join(top.LISTING_FIELDS),
            "page_no": str(page_no),
            "page_size": str(self.config.page_size),
            "order_by": "modified:asc",
        }
        if window_start is not None:
            params["start_modified"] = window_start
        if page_no == 1:
            self.windows += 1
            self.pages_total += 1
            self._stat("shopcrawl/listing/windows", self.windows)
        return api_request(
            self.config.api_url,
            top.LISTING_METHOD,
            params,
            callback=self.parse_listing,
            meta={"window_start": window_start, "page_no": page_no},
            priority=10,  # listing first: it feeds the detail batches and fixes the totals
        )

    def parse_listing(self, response: TopResponse) -> Iterator[Request | Reject]:
        meta = response.meta[META_KEY]
        window_start, page_no = meta["window_start"], meta["page_no"]
        self.pages_done += 1
        if response.error is not None or response.payload is None:
            yield self._reject(
                None, f"listing/{_error_text(response)}", {"window_start": window_start, "page_no": page_no}
            )
            return
        self._stat("shopcrawl/listing/pages", self.pages_done)
        payload = response.payload
        try:
            raw_items = top.unwrap_list(payload, "items", "item")
            total = int(payload.get("total_results") or 0)
        except (top.EnvelopeError, TypeError, ValueError) as exc:
            where = {"window_start": window_start, "page_no": page_no}
            yield self._reject(None, f"listing/bad-body: {exc}", where)
            return
        if page_no == 1:
            if window_start is None:
                self.declared_total = total
                self.ledger.set_declared_total(total)
                self._stat("shopcrawl/listing/declared_total", total)
                logger.info("Shop %s declares %d items on sale", self.seller_id, total)
            last_page = self._last_page(total)
            self.pages_total += max(0, last_page - 1)
            for page in range(2, last_page + 1):
                yield self._listing(window_start, page)
        if total > self.config.page_cap and page_no == self._last_page(total) and raw_items:
            yield from self._next_window(window_start, raw_items[-1])
        yield from self._detail_batches(f"{window_start}|{page_no}", raw_items)

    def _last_page(self, total: int) -> int:
        reachable = min(total, self.config.page_cap - self.config.page_cap % self.config.page_size)
        return max(1, math.ceil(reachable / self.config.page_size))

    def _next_window(self, window_start: str | None, last_item: dict[str, Any]) -> Iterator[Request | Reject]:
        """Open the window that starts at the last capped item's modified time (inclusive)."""
        last_modified = str(last_item.get("modified", ""))
        if not last_modified:
            yield self._reject(None, "listing/no-modified-at-cap", {"window_start": window_start})
            return
        if last_modified == window_start:
            # More items share this one second than the cap lets us page: skip past it, loudly.
            logger.warning(
                "More than %d items share modified=%s; the API cannot page them all; "
                "coverage will show the gap",
                self.config.page_cap,
                last_modified,
            )
            last_modified = top.format_timestamp(top.parse_time(last_modified) + timedelta(seconds=1))
        yield self._listing(last_modified, 1)

    # -- details -------------------------------------------------------------------------------

    def _detail_batches(self, page_key: str, raw_items: list[Any]) -> Iterator[Request | Reject]:
        """Detail batches for the items this listing page is the first to list (an item at a
        window boundary is listed twice). The same page processed again claims the same items.
        A row that cannot become a request (no usable ``num_iid``) becomes a reject."""
        listed: dict[int, dict[str, Any]] = {}
        for row, raw in enumerate(raw_items):
            num_iid = _listed_id(raw)
            if isinstance(num_iid, str):
                self._inc("shopcrawl/listing/bad_rows")
                payload = {"page": page_key, "row": row, "raw": raw}
                yield self._reject(None, f"listing/bad-row: page {page_key} row {row}: {num_iid}", payload)
                continue
            listed.setdefault(num_iid, {k: raw[k] for k in LISTED_FIELDS if k in raw})
        mine = self.ledger.claim(page_key, listed)
        fresh = {n: fields for n, fields in listed.items() if n in mine}
        self._stat("shopcrawl/listing/items", self.ledger.listed_count())
        ids = list(fresh)
        for i in range(0, len(ids), self.config.detail_batch):
            yield self._detail({str(n): fresh[n] for n in ids[i : i + self.config.detail_batch]})

    def _detail(self, listed: dict[str, dict[str, Any]]) -> Request:
        fields = list(top.DETAIL_FIELDS) + (["desc"] if self.config.fetch_desc else [])
        return api_request(
            self.config.api_url,
            top.DETAIL_METHOD,
            {"fields": ",".join(fields), "num_iids": ",".join(listed)},
            callback=self.parse_detail,
            meta={"listed": listed},
        )

    def parse_detail(self, response: TopResponse) -> Iterator[Request | RawTopItem | Reject]:
        listed: dict[str, dict[str, Any]] = response.meta[META_KEY]["listed"]
        error = response.error
        if error is not None:
            if len(listed) > 1 and error.code != GAVE_UP_CODE:
                # An isv.* error names one bad item; halve the batch until it stands alone.
                self._inc("shopcrawl/detail/split")
                ids = list(listed)
                half = len(ids) // 2
                yield self._detail({k: listed[k] for k in ids[:half]})
                yield self._detail({k: listed[k] for k in ids[half:]})
                return
            # Retries spent: the crawl failed to get these items (not accounted for). Otherwise the
            # API refused this one item (isv.*): a reason about the item itself.
            kind = "failed/detail" if error.code == GAVE_UP_CODE else "detail"
            for num_iid, fields in listed.items():
                yield self._reject(int(num_iid), f"{kind}/{_error_text(response)}", fields)
            return
        assert response.payload is not None
        try:
            records = top.unwrap_list(response.payload, "items", "item")
        except top.EnvelopeError as exc:
            for num_iid, fields in listed.items():
                yield self._reject(int(num_iid), f"failed/detail/bad-body: {exc}", fields)
            return
        returned: set[str] = set()
        for raw in records:
            if not isinstance(raw, dict):
                continue
            key = str(raw.get("num_iid", ""))
            if key not in listed or key in returned:
                continue
            returned.add(key)
            self._inc("shopcrawl/detail/items")
            yield RawTopItem(self.platform, self.seller_id, self.run_id, int(key), raw, listed[key])
        for key in listed.keys() - returned:
            # items.seller.list.get omits deleted or foreign ids without an error.
            self._inc("shopcrawl/detail/missing")
            yield self._reject(
                int(key), "detail/missing: omitted by the detail call (deleted since listing?)", listed[key]
            )

    # -- helpers -------------------------------------------------------------------------------

    def _reject(self, num_iid: int | None, reason: str, payload: dict[str, Any]) -> Reject:
        return Reject(self.platform, self.seller_id, reason, dict(payload), num_iid, self.run_id)

    def _stat(self, key: str, value: int) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.set_value(key, value)

    def _inc(self, key: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key)


def _listed_id(raw: Any) -> int | str:
    """A listing row's ``num_iid``, or what is wrong with the row."""
    if not isinstance(raw, dict):
        return f"not an object: {raw!r:.80}"
    value = raw.get("num_iid")
    if value is None or value == "":
        return "num_iid missing"
    if isinstance(value, bool | float):
        return f"num_iid is not an integer: {value!r:.40}"
    try:
        number = int(str(value).strip())
    except ValueError:
        return f"num_iid is not an integer: {value!r:.40}"
    return number if number > 0 else f"num_iid is not positive: {number}"


def _error_text(response: TopResponse) -> str:
    error = response.error
    if error is None:
        return "empty-response"
    return f"{error.sub_code or error.code}: {error.sub_msg or error.msg}"

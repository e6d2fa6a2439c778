"""``scrapy crawl shop -a seller_id=<id> [-a api=top|1688|gateway] [-a platform=taobao|1688]
[-a mode=incremental|full]``: list every on-sale item of one shop, then fetch details.

The spider is dialect-free: the API dialect (:mod:`shopcrawl.platforms`) plans the listing (TOP:
``modified`` windows past the paging cap; see each dialect) and says how to call for details. The
spider claims each listing page's items in the ledger (an item listed twice is counted once),
batches the new ones into detail calls, and turns every row, body or record it cannot use into a
reject with its reason.

Incremental (the default): each listing page's items are read from the store in one query; an item
whose stored listing fingerprint matches the page's and whose detail is younger than
``SHOPCRAWL_DETAIL_MAX_AGE`` is not fetched again but carried forward: the stored item, stamped with
this run, so the run still records its observations. ``-a mode=full`` fetches every detail.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.defer import deferred_to_future
from twisted.internet import threads

from shopcrawl.config import ShopcrawlConfig, crawl_mode
from shopcrawl.extensions.run import RunLifecycle
from shopcrawl.http import GAVE_UP_CODE, META_KEY, ApiResponse
from shopcrawl.items import RawRecord, Reject, ShopItem
from shopcrawl.ledger import Ledger, LocalLedger
from shopcrawl.platforms.base import LISTING_FP, Call, Dialect, EnvelopeError, Lister
from shopcrawl.runs import LISTING_GAP_STAT

logger = logging.getLogger(__name__)

# Detail calls go before listing pages, and (in one process) at most CONCURRENT_REQUESTS listing pages
# are queued or in flight at once; the rest of the plan waits in the spider as calls. Each listing page
# plans its detail calls (TOP: 10 a page; 1688 and the gateways: one per item), so at most that many
# pages' worth of detail calls ever wait in the queue, whatever the shop's size. With the listing first,
# every detail call of the shop waited in the queue: memory that grew with the shop. A listing page goes
# out whenever no detail call waits, and the next ones are queued as pages are processed, so the
# downloader never runs dry.
DETAIL_PRIORITY = 10
LISTING_PRIORITY = 0


@dataclasses.dataclass(frozen=True)
class StoreRead:
    """A listing step asking for the stored items among ``ids`` (sent back into the steps)."""

    ids: list[int]


Step = Request | Reject | ShopItem | StoreRead


class ShopSpider(Spider):
    name = "shop"
    platform = "taobao"

    def __init__(
        self,
        seller_id: str | None = None,
        run_id: str | None = None,
        api: str | None = None,
        platform: str | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_arg, self.platform_arg = api, platform
        self.mode = crawl_mode(mode)
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
        # Listing calls planned and not yet queued, and listing requests queued and not yet processed.
        self._planned: deque[Call] = deque()
        self._listing_out = 0
        self.listing_ahead: int | None = None  # most listing requests out at once; None: no limit

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.config = ShopcrawlConfig.from_settings(
            crawler.settings, api=spider.api_arg, platform=spider.platform_arg
        )
        spider.dialect = spider.config.dialect
        spider.platform = spider.dialect.platform
        spider.lister = spider.dialect.lister(
            spider.seller_id, page_size=spider.config.page_size, page_cap=spider.config.page_cap
        )
        spider.listing_ahead = crawler.settings.getint("CONCURRENT_REQUESTS")
        crawler.signals.connect(spider.spider_idle, signal=signals.spider_idle)
        return spider

    config: ShopcrawlConfig
    dialect: Dialect
    lister: Lister

    def adopt_run(self, run_id: str, started_at: str, ledger: Ledger) -> None:
        """Join a distributed run: its id, start time and shared listing ledger. Its listing calls all
        go to the shared queue at once (held back here, they would die with this worker)."""
        self.run_id = run_id
        self.started_at = datetime.fromisoformat(started_at)
        self.ledger = ledger
        self.listing_ahead = None

    def listed_count(self) -> int:
        return self.ledger.listed_count()

    def closed(self, reason: str) -> None:
        if isinstance(self.ledger, LocalLedger):
            self.ledger.close()  # its counts stay readable for the run's final record

    async def start(self) -> AsyncIterator[Request]:
        yield self.first_listing()

    def first_listing(self) -> Request:
        """The listing's first request: at the start, and again for a run whose shared state Redis lost."""
        self.pages_total += 1
        self._listing_out += 1
        return self._listing(self.lister.first())

    # -- listing -------------------------------------------------------------------------------

    def _listing(self, call: Call) -> Request:
        return self._request(call, self.parse_listing_page, priority=LISTING_PRIORITY)

    def _plan(self, calls: list[Call]) -> Iterator[Request]:
        """Add listing calls to the plan; queue as many of the plan's calls as the limit allows."""
        self.pages_total += len(calls)
        self._planned.extend(calls)
        while self._planned and (self.listing_ahead is None or self._listing_out < self.listing_ahead):
            self._listing_out += 1
            yield self._listing(self._planned.popleft())

    def spider_idle(self) -> None:
        """Nothing queued or in flight: queue the next listing calls of the plan, if any are left (a
        listing request that was dropped, never processed, no longer counts)."""
        if not self._planned:
            return
        self._listing_out = 0
        assert self.crawler.engine is not None
        for request in self._plan([]):
            self.crawler.engine.crawl(request)
        raise DontCloseSpider

    def _request(self, call: Call, callback: Any, priority: int = 0, **state: Any) -> Request:
        meta = {META_KEY: {"api": call.api, "call": {"params": call.params, "meta": call.meta}, **state}}
        return self.dialect.request(
            self.config.api_url, call, callback=callback, meta=meta, priority=priority
        )

    @staticmethod
    def _call(response: ApiResponse) -> Call:
        state = response.meta[META_KEY]
        return Call(state["api"], state["call"]["params"], state["call"]["meta"])

    def parse_listing(self, response: ApiResponse) -> Iterator[Request | Reject | ShopItem]:
        """A listing page's follow-up calls, detail calls, carried items and rejects; the store is read
        in this thread (a crawl uses :meth:`parse_listing_page`, which reads it off the reactor)."""
        steps = self._listing_steps(response)
        stored: dict[int, ShopItem] | None = None
        while True:
            try:
                step = steps.send(stored)
            except StopIteration:
                return
            stored = None
            if isinstance(step, StoreRead):
                stored = self._read_stored(step.ids)
            else:
                yield step

    async def parse_listing_page(self, response: ApiResponse) -> AsyncIterator[Request | Reject | ShopItem]:
        """:meth:`parse_listing`, with the page's one store read in a worker thread."""
        steps = self._listing_steps(response)
        stored: dict[int, ShopItem] | None = None
        while True:
            try:
                step = steps.send(stored)
            except StopIteration:
                return
            stored = None
            if isinstance(step, StoreRead):
                stored = await deferred_to_future(threads.deferToThread(self._read_stored, step.ids))
            else:
                yield step

    def _listing_steps(self, response: ApiResponse) -> Generator[Step, dict[int, ShopItem] | None, None]:
        yield from self._page_steps(response)
        # This page's detail calls are queued (after its store read, if any): it no longer counts as
        # out, and the next listing call of the plan may go.
        self._listing_out = max(0, self._listing_out - 1)
        yield from self._plan([])

    def _page_steps(self, response: ApiResponse) -> Generator[Step, dict[int, ShopItem] | None, None]:
        call = self._call(response)
        self.pages_done += 1
        if response.error is not None or response.payload is None:
            yield self._reject(None, f"listing/{_error_text(response)}", dict(call.meta))
            return
        self._stat("shopcrawl/listing/pages", self.pages_done)
        try:
            page = self.lister.on_page(call, response.payload, self.ledger.listed_count())
        except (EnvelopeError, TypeError, ValueError) as exc:
            yield self._reject(None, f"listing/bad-body: {exc}", dict(call.meta))
            return
        if page.declared_total is not None:
            self.declared_total = page.declared_total
            self.ledger.set_declared_total(page.declared_total)
            self._stat("shopcrawl/listing/declared_total", page.declared_total)
            logger.info("Shop %s declares %d items on sale", self.seller_id, page.declared_total)
        if page.queries:
            self.windows += page.queries
            self._stat("shopcrawl/listing/windows", self.windows)
        if page.gap:
            assert self.crawler.stats is not None
            self.crawler.stats.set_value(LISTING_GAP_STAT, page.gap)
            self.ledger.set_listing_gap(page.gap)
        yield from self._plan(page.follow)
        yield from self._detail_batches(page.page_key, page.rows)

    # -- details -------------------------------------------------------------------------------

    def _detail_batches(
        self, page_key: str, raw_items: list[Any]
    ) -> Generator[Step, dict[int, ShopItem] | None, None]:
        """Detail calls for the items this listing page is the first to list (an item can be listed
        by more than one page). The same page processed again claims the same items. A row that
        cannot become a request (no usable item id) becomes a reject."""
        listed: dict[int, dict[str, Any]] = {}
        rows: dict[int, int] = {}
        for row, raw in enumerate(raw_items):
            num_iid = self.dialect.listed_id(raw)
            if isinstance(num_iid, str):
                self._inc("shopcrawl/listing/bad_rows")
                payload = {"page": page_key, "row": row, "raw": raw}
                yield self._reject(None, f"listing/bad-row: page {page_key} row {row}: {num_iid}", payload)
                continue
            listed.setdefault(num_iid, self.dialect.listed_fields(raw))
            rows.setdefault(num_iid, row)
        mine = self.ledger.claim(page_key, listed)
        fresh = {n: fields for n, fields in listed.items() if n in mine}
        self._stat("shopcrawl/listing/items", self.ledger.listed_count())
        prints = {n: self.dialect.listing_fingerprint(raw_items[rows[n]]) for n in fresh}
        stored: dict[int, ShopItem] = {}
        if self._incremental() and prints:
            stored = (yield StoreRead(list(prints))) or {}
        for num_iid, carried in self._unchanged(prints, stored).items():
            del fresh[num_iid]
            self._inc("shopcrawl/detail/carried")
            yield carried
        for num_iid, fields in fresh.items():
            fields[LISTING_FP] = prints[num_iid]
        ids = list(fresh)
        for i in range(0, len(ids), self.config.detail_batch):
            yield self._detail({str(n): fresh[n] for n in ids[i : i + self.config.detail_batch]})

    def _incremental(self) -> bool:
        """Whether this crawl reads the store to skip unchanged items (not in a full crawl, nor
        without a store pipeline, nor for a shop the store held nothing of when the run started)."""
        lifecycle = RunLifecycle.for_crawler(self.crawler)
        return self.mode != "full" and lifecycle.is_open and lifecycle.shop_stored

    def _read_stored(self, ids: list[int]) -> dict[int, ShopItem]:
        self._inc("shopcrawl/listing/store_reads")
        return RunLifecycle.for_crawler(self.crawler).store.items_by_id(self.platform, self.seller_id, ids)

    def _unchanged(self, prints: dict[int, str], stored: dict[int, ShopItem]) -> dict[int, ShopItem]:
        """The stored items, stamped with this run, whose listing shows no change and whose detail is
        not older than SHOPCRAWL_DETAIL_MAX_AGE."""
        oldest = datetime.now(UTC) - timedelta(seconds=self.config.detail_max_age)
        return {
            num_iid: dataclasses.replace(item, run_id=self.run_id)
            for num_iid, item in stored.items()
            if item.listing_fp == prints.get(num_iid)
            and item.detail_at is not None
            and item.detail_at > oldest
        }

    def _detail(self, listed: dict[str, dict[str, Any]]) -> Request:
        call = self.dialect.detail_call(list(listed), listed)
        return self._request(call, self.parse_detail, priority=DETAIL_PRIORITY, listed=listed)

    def parse_detail(self, response: ApiResponse) -> Iterator[Request | RawRecord | Reject]:
        listed: dict[str, dict[str, Any]] = response.meta[META_KEY]["listed"]
        error = response.error
        if error is not None:
            if len(listed) > 1 and error.code != GAVE_UP_CODE:
                # An error about one bad item fails its whole batch; halve it until it stands alone.
                self._inc("shopcrawl/detail/split")
                ids = list(listed)
                half = len(ids) // 2
                yield self._detail({k: listed[k] for k in ids[:half]})
                yield self._detail({k: listed[k] for k in ids[half:]})
                return
            # Retries spent: the crawl failed to get these items (not accounted for). Otherwise the
            # API refused this one item: a reason about the item itself.
            kind = "failed/detail" if error.code == GAVE_UP_CODE else "detail"
            for num_iid, fields in listed.items():
                yield self._reject(int(num_iid), f"{kind}/{_error_text(response)}", fields)
            return
        assert response.payload is not None
        try:
            records = self.dialect.detail_records(response.payload)
        except EnvelopeError as exc:
            for num_iid, fields in listed.items():
                yield self._reject(int(num_iid), f"failed/detail/bad-body: {exc}", fields)
            return
        returned: set[str] = set()
        for raw in records:
            key = self.dialect.record_id(raw)
            if key is None or key not in listed or key in returned:
                continue
            returned.add(key)
            self._inc("shopcrawl/detail/items")
            yield RawRecord(
                self.platform, self.seller_id, self.run_id, int(key), raw, listed[key], self.dialect.name
            )
        for key in listed.keys() - returned:
            # A detail call can omit deleted or foreign ids without an error.
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


def _error_text(response: ApiResponse) -> str:
    error = response.error
    if error is None:
        return "empty-response"
    return f"{error.sub_code or error.code}: {error.sub_msg or error.msg}"

"""First pipeline: turns raw API records into typed items, or into rejects with a reason.

A bad record never crashes the crawl and is never dropped silently: it becomes a
:class:`Reject` (stored by the store pipeline), and ``shopcrawl/item/invalid/<field>`` counts it.
"""

from __future__ import annotations

import re
from typing import Self

from scrapy.crawler import Crawler

from shopcrawl.items import RawRecord, Reject, ShopItem
from shopcrawl.platforms import get_dialect
from shopcrawl.platforms.base import LISTING_FP, Dialect, InvalidItem
from shopcrawl.validation import check_item

_INDEX = re.compile(r"\[\d+\]")


class ValidatePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._dialects: dict[tuple[str, str], Dialect] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_item(self, item: object) -> object:
        if not isinstance(item, RawRecord):
            return item
        try:
            key = (item.api, item.platform)
            dialect = self._dialects.get(key) or self._dialects.setdefault(key, get_dialect(*key))
            typed: ShopItem = dialect.to_item(
                item.raw, item.listed, seller_id=item.seller_id, run_id=item.run_id
            )
            typed.listing_fp = str(item.listed.get(LISTING_FP, ""))
            problem = check_item(typed)
        except InvalidItem as exc:
            problem = (exc.field, exc.reason)
        if problem is None:
            self._inc("shopcrawl/item/valid")
            return typed
        field, reason = problem
        stat_field = _INDEX.sub("", field)
        self._inc("shopcrawl/item/invalid")
        self._inc(f"shopcrawl/item/invalid/{stat_field}")
        return Reject(
            platform=item.platform,
            seller_id=item.seller_id,
            reason=f"invalid/{field}: {reason}",
            payload={"raw": item.raw, "listed": item.listed},
            num_iid=item.num_iid,
            run_id=item.run_id,
        )

    def _inc(self, key: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key)

"""The per-item "Scraped from" log line exists at DEBUG only (building it costs CPU at every item)."""

from __future__ import annotations

import pytest
from scrapy import Spider
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from shopcrawl.logformatter import ShopLogFormatter


@pytest.mark.parametrize(
    ("level", "logged"), [("DEBUG", True), ("INFO", False), ("WARNING", False), (10, True)]
)
def test_scraped_items_are_logged_at_debug_only(level, logged):
    crawler = get_crawler(
        Spider, {"LOG_LEVEL": level, "LOG_FORMATTER": "shopcrawl.logformatter.ShopLogFormatter"}
    )
    formatter = ShopLogFormatter.from_crawler(crawler)
    response = TextResponse("http://127.0.0.1/x", body=b"{}")
    result = formatter.scraped({"num_iid": 1}, response, Spider("s"))
    assert (result is not None) is logged
    if logged:
        assert result is not None and "Scraped from" in result["msg"]

"""The progress line a crawl logs every SHOPCRAWL_PROGRESS_INTERVAL seconds."""

from __future__ import annotations

import asyncio
import time

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from shopcrawl.downloadermiddlewares.ratelimit import BanBook
from shopcrawl.extensions.progress import Progress
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.spiders.shop import ShopSpider


def progress(**stats):
    crawler = get_crawler(ShopSpider, {**SANDBOX_CREDENTIALS, "SHOPCRAWL_PROGRESS_INTERVAL": 5})
    crawler.spider = ShopSpider.from_crawler(crawler, seller_id="s1", run_id="r1")
    for key, value in stats.items():
        crawler.stats.set_value(f"shopcrawl/{key.replace('__', '/')}", value)
    return Progress.from_crawler(crawler)


def test_the_line_shows_pages_items_calls_bans_and_an_eta():
    ext = progress(detail__items=1180, store__items=1150, store__rejects=50, api__calls=71, ban__count=1)
    spider = ext.crawler.spider
    spider.pages_done, spider.pages_total = 6, 10
    spider.ledger.set_declared_total(2000)
    spider.ledger.claim("None|1", range(1, 1201))
    asyncio.run(BanBook.for_crawler(ext.crawler).ban("taobao.items.onsale.get", 3, app_wide=False))
    ext.started = time.monotonic() - 10  # 1,200 of 2,000 done in 10 s: 800 more take about 6.7 s
    assert ext.line() == (
        "listing pages 6/10; items listed 1,200/2,000, detailed 1,180, stored 1,150/2,000; "
        "API calls 71; bans 1 (3.0 s); ETA 0:00:07"
    )


def test_before_the_first_listing_page_the_total_and_eta_are_unknown():
    assert progress().line() == (
        "listing pages 0/0; items listed 0/?, detailed 0, stored 0/?; API calls 0; bans 0 (0.0 s); ETA ?"
    )


def test_nothing_done_yet_has_no_eta_and_a_finished_shop_an_eta_of_zero():
    ext = progress()
    ext.crawler.spider.ledger.set_declared_total(10)
    assert ext.line().endswith("stored 0/10; API calls 0; bans 0 (0.0 s); ETA ?")
    ext.crawler.stats.set_value("shopcrawl/store/items", 12)  # delivered twice: never a negative ETA
    assert ext.line().endswith("stored 12/10; API calls 0; bans 0 (0.0 s); ETA 0:00:00")


def test_an_interval_of_zero_switches_progress_off():
    crawler = get_crawler(ShopSpider, {**SANDBOX_CREDENTIALS, "SHOPCRAWL_PROGRESS_INTERVAL": 0})
    with pytest.raises(NotConfigured, match="SHOPCRAWL_PROGRESS_INTERVAL is 0"):
        Progress.from_crawler(crawler)

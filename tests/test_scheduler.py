"""The single-process scheduler: detail calls first, the detail backlog stat, and a dupefilter that
remembers listing calls only."""

from __future__ import annotations

from scrapy.utils.test import get_crawler

from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.scheduler import BACKLOG_MAX_STAT, ListingDupeFilter, ShopScheduler
from shopcrawl.spiders.shop import ShopSpider


def _crawler():
    crawler = get_crawler(
        ShopSpider,
        {
            **SANDBOX_CREDENTIALS,
            "SCHEDULER": "shopcrawl.scheduler.ShopScheduler",
            "DUPEFILTER_CLASS": "shopcrawl.scheduler.ListingDupeFilter",
            # Scrapy's default (DownloaderAwarePriorityQueue) needs a running engine; one API host
            # makes it order requests as this one does.
            "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.ScrapyPriorityQueue",
        },
    )
    spider = ShopSpider.from_crawler(crawler, seller_id="s1", run_id="run-1")
    crawler.spider = spider
    return crawler, spider


def _detail(spider, *ids):
    return spider._detail({str(n): {} for n in ids})


def test_detail_calls_go_first_and_the_most_waiting_at_once_is_a_stat():
    crawler, spider = _crawler()
    scheduler = ShopScheduler.from_crawler(crawler)
    scheduler.open(spider)
    for request in (spider._listing(spider.lister.call(None, 2)), _detail(spider, 1), _detail(spider, 2)):
        assert scheduler.enqueue_request(request)
    first = scheduler.next_request()
    assert scheduler.enqueue_request(_detail(spider, 3))
    rest = [scheduler.next_request() for _ in range(3)]
    assert [r.callback.__name__ for r in (first, *rest)] == ["parse_detail"] * 3 + ["parse_listing_page"]
    assert scheduler.next_request() is None
    assert crawler.stats.get_value(BACKLOG_MAX_STAT) == 2


def test_the_dupefilter_drops_a_listing_call_seen_before_and_remembers_no_detail_call():
    crawler, spider = _crawler()
    dupefilter = ListingDupeFilter.from_crawler(crawler)
    page = spider.lister.call(None, 2)
    assert not dupefilter.request_seen(spider._listing(page))
    assert dupefilter.request_seen(spider._listing(page))
    assert not dupefilter.request_seen(_detail(spider, 1, 2))
    assert not dupefilter.request_seen(_detail(spider, 1, 2))  # unique by the ledger: never remembered
    assert len(dupefilter._fingerprints) == 1

"""ShopSpider's callbacks, called directly on decoded responses: listing plan, windows past the
paging cap, detail batches, batch halving, and what becomes a reject."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
from scrapy import Request
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.test import get_crawler

from shopcrawl.extensions.run import RunLifecycle
from shopcrawl.http import GAVE_UP_CODE, ApiResponse
from shopcrawl.items import RawRecord, Reject
from shopcrawl.platforms import top
from shopcrawl.platforms.top import ApiError
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.spiders.shop import DETAIL_PRIORITY, LISTING_PRIORITY, ShopSpider, StoreRead


def make_spider(**settings):
    crawler = get_crawler(ShopSpider, {**SANDBOX_CREDENTIALS, **settings})
    spider = ShopSpider.from_crawler(crawler, seller_id="s1", run_id="run-1")
    crawler.spider = spider
    return spider


def params(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.body.decode()).items()}


def respond(request: Request, payload=None, error=None) -> ApiResponse:
    response = ApiResponse(request.url, body=b"{}", request=request)
    response.payload, response.error = payload, error
    return response


def row(num_iid, modified="2024-01-01 00:00:00"):
    return {"num_iid": num_iid, "modified": modified, "sold_quantity": 1, "title": "ignored"}


def listing_page(spider, total, rows, window_start=None, page_no=1):
    request = spider._listing(spider.lister.call(window_start, page_no))
    return list(spider.parse_listing(respond(request, {"total_results": total, "items": {"item": rows}})))


def split(outputs):
    requests = [o for o in outputs if isinstance(o, Request)]
    return (
        [r for r in requests if params(r)["method"] == top.LISTING_METHOD],
        [r for r in requests if params(r)["method"] == top.DETAIL_METHOD],
        [o for o in outputs if isinstance(o, Reject)],
    )


def test_first_page_plans_every_page_and_batches_its_items_by_20():
    spider = make_spider()
    listings, details, rejects = split(listing_page(spider, 1000, [row(n) for n in range(1, 201)]))
    assert [params(r)["page_no"] for r in listings] == [str(p) for p in range(2, 6)]
    assert all(params(r)["page_size"] == "200" and "start_modified" not in params(r) for r in listings)
    assert [len(params(r)["num_iids"].split(",")) for r in details] == [20] * 10
    assert rejects == [] and spider.declared_total == 1000 and spider.listed_count() == 200
    assert spider.crawler.stats.get_value("shopcrawl/listing/declared_total") == 1000


def test_detail_calls_go_before_listing_pages():
    listings, details, _ = split(listing_page(make_spider(), 1000, [row(n) for n in range(1, 201)]))
    assert {r.priority for r in details} == {DETAIL_PRIORITY} and {r.priority for r in listings} == {
        LISTING_PRIORITY
    }
    assert DETAIL_PRIORITY > LISTING_PRIORITY


def test_at_most_concurrent_requests_listing_pages_are_out_and_the_plan_goes_on_as_they_are_processed():
    spider = make_spider(CONCURRENT_REQUESTS=4)
    spider.first_listing()
    listings, _, _ = split(listing_page(spider, 2000, [row(n) for n in range(1, 201)]))
    assert [params(r)["page_no"] for r in listings] == ["2", "3", "4", "5"]  # of pages 2..10
    listings, _, _ = split(listing_page(spider, 2000, [row(n) for n in range(201, 401)], page_no=2))
    assert [params(r)["page_no"] for r in listings] == ["6"]
    assert spider.pages_total == 10  # the progress line counts the whole plan


def test_a_page_waiting_for_its_store_read_still_counts_as_out():
    """Its detail calls are not queued yet: the next listing page waits until they are."""
    spider = make_spider(CONCURRENT_REQUESTS=4)
    lifecycle = RunLifecycle.for_crawler(spider.crawler)
    lifecycle._open = lifecycle.shop_stored = True  # an incremental crawl of a shop the store holds
    spider.first_listing()
    request = spider._listing(spider.lister.call(None, 1))
    rows = [row(n) for n in range(1, 201)]
    steps = spider._listing_steps(respond(request, {"total_results": 2000, "items": {"item": rows}}))
    before = list(itertools.takewhile(lambda step: not isinstance(step, StoreRead), steps))
    assert [params(r)["page_no"] for r in split(before)[0]] == ["2", "3", "4"]
    after = [steps.send({})]
    after += list(steps)
    listings, details, _ = split(after)
    assert len(details) == 10 and [params(r)["page_no"] for r in listings] == ["5"]


def test_when_the_crawl_goes_idle_the_rest_of_the_plan_is_queued():
    """A listing request that never came back (dropped) no longer holds its place."""
    spider = make_spider(CONCURRENT_REQUESTS=4)
    spider.first_listing()
    split(listing_page(spider, 2000, [row(n) for n in range(1, 201)]))
    queued = []
    spider.crawler.engine = SimpleNamespace(crawl=queued.append)
    with pytest.raises(DontCloseSpider):
        spider.spider_idle()
    assert [params(r)["page_no"] for r in queued] == ["6", "7", "8", "9"]
    with pytest.raises(DontCloseSpider):
        spider.spider_idle()
    assert [params(r)["page_no"] for r in queued[4:]] == ["10"]
    spider.spider_idle()  # the whole plan is queued: the crawl may close


def test_a_distributed_worker_queues_the_whole_plan_at_once():
    spider = make_spider(CONCURRENT_REQUESTS=4)
    spider.adopt_run("run-1", "2026-01-01T00:00:00+00:00", spider.ledger)
    listings, _, _ = split(listing_page(spider, 2000, [row(n) for n in range(1, 201)]))
    assert len(listings) == 9


def test_rows_without_a_usable_num_iid_become_rejects_with_a_stat():
    spider = make_spider()
    rows = [row(1), {"title": "no id"}, row("abc"), None, row(-5), row(2.5), row(2)]
    _, details, rejects = split(listing_page(spider, 7, rows))
    assert params(details[0])["num_iids"] == "1,2"
    reasons = [r.reason for r in rejects]
    assert reasons == [
        "listing/bad-row: page None|1 row 1: num_iid missing",
        "listing/bad-row: page None|1 row 2: num_iid is not an integer: 'abc'",
        "listing/bad-row: page None|1 row 3: not an object: None",
        "listing/bad-row: page None|1 row 4: num_iid is not positive: -5",
        "listing/bad-row: page None|1 row 5: num_iid is not an integer: 2.5",
    ]
    assert all(r.num_iid is None and r.run_id == "run-1" and "raw" in r.payload for r in rejects)
    assert spider.crawler.stats.get_value("shopcrawl/listing/bad_rows") == 5


def test_a_shop_past_the_cap_opens_the_next_window_at_the_last_modified_time():
    spider = make_spider(SHOPCRAWL_PAGE_CAP=1000)
    first = listing_page(spider, 2500, [row(n) for n in range(1, 201)])
    listings, _, _ = split(first)
    assert [params(r)["page_no"] for r in listings] == ["2", "3", "4", "5"]  # 5 pages reach the cap
    last_rows = [row(n, "2024-02-03 04:05:06") for n in range(801, 1001)]
    listings, details, _ = split(listing_page(spider, 2500, last_rows, page_no=5))
    assert [(params(r)["page_no"], params(r)["start_modified"]) for r in listings] == [
        ("1", "2024-02-03 04:05:06")
    ]
    assert len(details) == 10


def test_a_boundary_item_listed_by_two_windows_is_detailed_once():
    spider = make_spider(SHOPCRAWL_PAGE_CAP=1000)
    listing_page(spider, 2500, [row(n) for n in range(1, 201)])
    _, again, _ = split(listing_page(spider, 1700, [row(200), row(201)], window_start="2024-01-01 00:00:00"))
    assert [params(r)["num_iids"] for r in again] == ["201"]
    assert spider.listed_count() == 201


def test_more_items_in_one_second_than_the_cap_skips_past_that_second_loudly(caplog):
    spider = make_spider(SHOPCRAWL_PAGE_CAP=1000)
    same = "2024-02-03 04:05:06"
    listings, _, _ = split(listing_page(spider, 1500, [row(n, same) for n in range(1, 201)], same, page_no=5))
    assert [params(r)["start_modified"] for r in listings] == ["2024-02-03 04:05:07"]
    assert "the API cannot page them all" in caplog.text


def detail_request(spider, ids):
    return spider._detail({str(n): {"sold_quantity": 1} for n in ids})


def test_an_isv_error_halves_the_batch_until_the_bad_item_stands_alone():
    spider = make_spider()
    error = ApiError("15", "Remote service error", "isv.item-not-found", "bad item")
    halves = list(spider.parse_detail(respond(detail_request(spider, range(1, 21)), error=error)))
    assert [params(r)["num_iids"].split(",") for r in halves] == [
        [str(n) for n in range(1, 11)],
        [str(n) for n in range(11, 21)],
    ]
    (alone,) = spider.parse_detail(respond(detail_request(spider, [7]), error=error))
    assert isinstance(alone, Reject) and alone.num_iid == 7
    assert alone.reason == "detail/isv.item-not-found: bad item"
    assert spider.crawler.stats.get_value("shopcrawl/detail/split") == 1


def test_a_batch_whose_retries_ran_out_is_rejected_as_failed_not_split():
    spider = make_spider()
    error = ApiError(GAVE_UP_CODE, "gave up after 5 retries: http_503")
    rejects = list(spider.parse_detail(respond(detail_request(spider, [1, 2, 3]), error=error)))
    assert [(r.num_iid, r.reason) for r in rejects] == [
        (n, "failed/detail/-1: gave up after 5 retries: http_503") for n in (1, 2, 3)
    ]


def test_items_the_detail_call_omits_are_rejected_as_missing_and_strays_ignored():
    spider = make_spider()
    request = detail_request(spider, [1, 2, 3])
    records = [{"num_iid": 1, "title": "a"}, {"num_iid": 3, "title": "c"}, {"num_iid": 99}, {"num_iid": 1}]
    outputs = list(spider.parse_detail(respond(request, {"items": {"item": records}})))
    raws = [o for o in outputs if isinstance(o, RawRecord)]
    assert [(r.num_iid, r.raw["title"], r.listed) for r in raws] == [
        (1, "a", {"sold_quantity": 1}),
        (3, "c", {"sold_quantity": 1}),
    ]
    (missing,) = [o for o in outputs if isinstance(o, Reject)]
    assert missing.num_iid == 2 and missing.reason.startswith("detail/missing")
    assert spider.crawler.stats.get_value("shopcrawl/detail/missing") == 1


def test_a_failed_listing_page_is_a_reject_not_a_crash():
    spider = make_spider()
    request = spider._listing(spider.lister.call(None, 3))
    (reject,) = spider.parse_listing(respond(request, error=ApiError(GAVE_UP_CODE, "gave up: http_503")))
    assert reject.num_iid is None and reject.reason == "listing/-1: gave up: http_503"


@pytest.mark.parametrize("seller", ["", "   ", None])
def test_a_seller_id_is_required(seller):
    with pytest.raises(ValueError, match="seller_id is required"):
        ShopSpider(seller_id=seller)


def test_bodies_of_another_shape_become_rejects_not_crashes():
    spider = make_spider()
    first = spider._listing(spider.lister.call(None, 1))
    (bad_page,) = spider.parse_listing(respond(first, {"total_results": 5, "items": "x"}))
    assert bad_page.reason == "listing/bad-body: items is neither a list nor a wrapped list"
    (bad_total,) = spider.parse_listing(respond(first, {"total_results": "many"}))
    assert bad_total.reason.startswith("listing/bad-body: invalid literal")
    outputs = list(spider.parse_detail(respond(detail_request(spider, [1, 2]), {"items": {"item": 7}})))
    assert [(r.num_iid, r.reason.split(":")[0]) for r in outputs] == [(1, "failed/detail/bad-body")] * 1 + [
        (2, "failed/detail/bad-body")
    ]

"""LeaseAckMiddleware with a real Redis: a leased request is acknowledged only after its callback
has finished and every item or reject it produced is stored."""

from __future__ import annotations

import asyncio

import pytest
import redis
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from shopcrawl.distributed.run import RunCoordinator
from shopcrawl.distributed.scheduler import LEASE_META, LeasedQueue
from shopcrawl.distributed.spidermw import LeaseAckMiddleware
from shopcrawl.items import RawRecord, Reject
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.spiders.shop import ShopSpider


@pytest.fixture
def crawler(redis_url):
    crawler = get_crawler(ShopSpider, {**SANDBOX_CREDENTIALS, "SHOPCRAWL_API_URL": "http://127.0.0.1:1/r"})
    crawler.spider = ShopSpider.from_crawler(crawler, seller_id="s1", run_id="run-a")
    server = redis.Redis.from_url(redis_url)
    coordinator = RunCoordinator(server, "s1")
    coordinator.join("run-a", "2026-01-01T00:00:00+00:00")
    crawler._shopcrawl_run = coordinator
    yield crawler
    server.close()


def leased_response(crawler):
    spider, coordinator = crawler.spider, crawler._shopcrawl_run
    queue = LeasedQueue(coordinator.server, spider, coordinator)
    queue.push(spider._detail({"1": {}, "2": {}}), fingerprint="fp")
    request = queue.pop()
    return TextResponse(request.url, body=b"{}", request=request)


def outputs(crawler, response, produced):
    async def result():
        for output in produced:
            yield output

    async def collect():
        mw = LeaseAckMiddleware.from_crawler(crawler)
        return [o async for o in mw.process_spider_output(response, result())]

    return asyncio.run(collect())


def item(num_iid):
    return RawRecord("taobao", "s1", "run-a", num_iid, {"num_iid": num_iid})


def test_the_lease_waits_for_every_item_the_callback_produced(crawler):
    coordinator = crawler._shopcrawl_run
    response = leased_response(crawler)
    produced = [item(1), Reject("taobao", "s1", "detail/missing", {}, 2, "run-a"), {"other": 1}]
    assert outputs(crawler, response, produced) == produced  # passed on unchanged, in order
    assert coordinator.pending() == (0, 1) and coordinator.unacked()  # idle must not close
    coordinator.stored([1], {})
    assert coordinator.pending() == (0, 1)
    coordinator.stored([2], {})
    assert coordinator.pending() == (0, 0) and coordinator.unacked() == 0


def test_a_callback_without_items_acknowledges_its_lease_once_its_requests_are_queued(crawler):
    """Scrapy queues a callback's outputs for its workers: the callback can end before the requests it
    yielded are scheduled. The lease waits for them, or another worker could find nothing queued or
    leased anywhere and close the run early."""
    coordinator = crawler._shopcrawl_run
    listing = crawler.spider._listing(crawler.spider.lister.call(None, 2))
    outputs(crawler, leased_response(crawler), [listing, Reject("taobao", "s1", "listing/x", {}, None)])
    assert coordinator.pending() == (0, 1)
    coordinator.request_scheduled(listing)
    assert coordinator.pending() == (0, 0)
    coordinator.request_scheduled(listing)  # told twice: nothing more happens
    assert coordinator.unacked() == 0


def test_a_callback_that_fails_midway_does_not_hold_the_run_open(crawler):
    coordinator = crawler._shopcrawl_run
    response = leased_response(crawler)

    async def failing():
        yield item(1)
        raise ValueError("bad body")

    async def collect():
        mw = LeaseAckMiddleware.from_crawler(crawler)
        return [o async for o in mw.process_spider_output(response, failing())]

    with pytest.raises(ValueError, match="bad body"):
        asyncio.run(collect())
    coordinator.stored([1], {})
    assert coordinator.unacked() == 0  # what spider_idle checks before this worker may finish


def test_without_a_lease_or_a_run_outputs_pass_through(crawler):
    produced = [item(1)]
    unleased = TextResponse(
        "http://127.0.0.1:1/r",
        body=b"{}",
        request=crawler.spider._listing(crawler.spider.lister.call(None, 1)),
    )
    assert outputs(crawler, unleased, produced) == produced
    assert crawler._shopcrawl_run.unacked() == 0
    del crawler._shopcrawl_run
    response = TextResponse("http://127.0.0.1:1/r", body=b"{}")
    response.request = crawler.spider._listing(crawler.spider.lister.call(None, 1))
    response.request.meta[LEASE_META] = "lease-1"
    assert outputs(crawler, response, produced) == produced


def test_a_carried_forward_item_holds_its_listing_lease_until_it_is_written(crawler):
    """An incremental listing page yields stored items (ShopItem), not detail records: the run must not
    end before they are written for this run."""
    from tests.test_store_sqlite import make_item

    coordinator = crawler._shopcrawl_run
    outputs(crawler, leased_response(crawler), [make_item(7, run_id="run-a")])
    assert coordinator.pending() == (0, 1)
    coordinator.stored([7], {})
    assert coordinator.pending() == (0, 0)

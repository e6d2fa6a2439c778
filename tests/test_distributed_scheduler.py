"""LeasedScheduler and LeasedQueue against a real Redis: requests round-trip as JSON, the
dupefilter, priority then FIFO order, leases, and foreign payloads refused."""

from __future__ import annotations

import pickle
from urllib.parse import parse_qs

import pytest
import redis
from scrapy import Request
from scrapy.utils.test import get_crawler

from shopcrawl.distributed import keys as K
from shopcrawl.distributed.scheduler import LEASE_META, LeasedScheduler
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.spiders.shop import ShopSpider


@pytest.fixture
def scheduler(redis_url):
    crawler = get_crawler(
        ShopSpider,
        {
            **SANDBOX_CREDENTIALS,
            "REDIS_URL": redis_url,
            "SHOPCRAWL_API_URL": "http://127.0.0.1:1/router/rest",
        },
    )
    spider = ShopSpider.from_crawler(crawler, seller_id="s1", run_id="run-a")
    crawler.spider = spider
    scheduler = LeasedScheduler.from_crawler(crawler)
    scheduler.open(spider)
    yield scheduler
    scheduler.server.close()


def detail(spider, *ids):
    return spider._detail({str(n): {"sold_quantity": n} for n in ids})


def stat(scheduler, key):
    return scheduler.crawler.stats.get_value(key)


def test_opening_joins_the_sellers_run(scheduler, redis_url):
    spider = scheduler.spider
    assert spider.run_id == "run-a" and scheduler.coordinator.run_id == "run-a"
    assert scheduler.crawler._shopcrawl_run is scheduler.coordinator
    assert spider.ledger is scheduler.coordinator
    assert redis.Redis.from_url(redis_url).get(K.current_key("s1")) == b"run-a"


def test_a_request_comes_back_as_it_was_queued(scheduler):
    spider = scheduler.spider
    request = detail(spider, 1, 2)
    assert scheduler.enqueue_request(request)
    assert scheduler.has_pending_requests()
    back = scheduler.next_request()
    assert (back.url, back.method, back.body, back.priority) == (
        request.url,
        request.method,
        request.body,
        request.priority,
    )
    assert back.callback == spider.parse_detail and back.headers == request.headers
    lease = back.meta.pop(LEASE_META)
    assert back.meta == request.meta and lease
    assert not scheduler.has_pending_requests() and scheduler.next_request() is None
    assert scheduler.coordinator.pending() == (0, 1)
    assert (stat(scheduler, "scheduler/enqueued/redis"), stat(scheduler, "scheduler/dequeued/redis")) == (
        1,
        1,
    )


def test_a_request_seen_before_is_filtered_unless_dont_filter(scheduler):
    spider = scheduler.spider
    assert scheduler.enqueue_request(detail(spider, 1))
    assert not scheduler.enqueue_request(detail(spider, 1))
    assert stat(scheduler, "dupefilter/filtered") == 1
    retry = detail(spider, 1).replace(dont_filter=True)
    assert scheduler.enqueue_request(retry)
    assert scheduler.coordinator.pending() == (2, 0)


def test_higher_priority_first_then_first_in_first_out(scheduler):
    spider = scheduler.spider
    for request in (
        detail(spider, 1),
        detail(spider, 2),
        spider._listing(spider.lister.call(None, 2)),
        detail(spider, 3),
    ):
        scheduler.enqueue_request(request)
    scheduler.enqueue_request(spider._listing(spider.lister.call(None, 3)))
    order = []
    while (request := scheduler.next_request()) is not None:
        params = parse_qs(request.body.decode())
        order.append(
            f"page {params['page_no'][0]}" if "page_no" in params else f"ids {params['num_iids'][0]}"
        )
    assert order == ["ids 1", "ids 2", "ids 3", "page 2", "page 3"]  # detail calls first


def test_a_request_queued_again_by_its_worker_releases_its_lease(scheduler):
    spider = scheduler.spider
    scheduler.enqueue_request(detail(spider, 1))
    leased = scheduler.next_request()
    assert scheduler.coordinator.pending() == (0, 1)
    assert scheduler.enqueue_request(leased.replace(dont_filter=True))  # e.g. a retry of the call
    assert scheduler.coordinator.pending() == (1, 0)


def test_a_pickled_payload_is_refused_and_dropped_and_nothing_in_it_runs(scheduler, caplog):
    spider = scheduler.spider
    keys = scheduler.coordinator.keys
    evil = b"deadbeef|" + pickle.dumps(Request("http://127.0.0.1:1/x"))
    scheduler.server.zadd(keys.queue, {evil: -1e15})  # ahead of everything
    scheduler.enqueue_request(detail(spider, 7))
    request = scheduler.next_request()
    assert b"num_iids=7" in request.body
    assert "Refused a queued payload and dropped it" in caplog.text
    assert "not a JSON request payload" in caplog.text
    assert scheduler.coordinator.pending() == (0, 1)  # only the good request is leased


def test_closing_gives_this_workers_leases_back(scheduler):
    scheduler.enqueue_request(detail(scheduler.spider, 1))
    scheduler.next_request()
    scheduler.close("shutdown")
    assert scheduler.coordinator.pending() == (1, 0)


def test_only_the_spiders_callbacks_can_be_queued(scheduler):
    with pytest.raises(ValueError, match="API callbacks"):
        scheduler.enqueue_request(Request("http://127.0.0.1:1/x", callback=print))

"""Queued requests are JSON; anything else in the queue is refused, and nothing in it runs."""

from __future__ import annotations

import base64
import json
import pickle

import pytest
from scrapy.utils.test import get_crawler

from shopcrawl.distributed import serializer
from shopcrawl.http import api_request
from shopcrawl.platforms import top
from shopcrawl.spiders.shop import ShopSpider


@pytest.fixture
def spider():
    crawler = get_crawler(ShopSpider, settings_dict={"SHOPCRAWL_PROGRESS_INTERVAL": 0})
    return ShopSpider.from_crawler(crawler, seller_id="demo")


def _request(spider):
    return api_request(
        "http://127.0.0.1:1/router/rest",
        top.DETAIL_METHOD,
        {"fields": "num_iid,sku", "num_iids": "1,2"},
        callback=spider.parse_detail,
        meta={"listed": {"1": {"sold_quantity": 3}, "2": {}}},
    )


def test_round_trip_keeps_everything_the_crawl_needs(spider):
    request = _request(spider)
    decoded = serializer.decode(serializer.encode(request, spider).encode(), spider)
    assert (decoded.url, decoded.method, decoded.body) == (request.url, request.method, request.body)
    assert decoded.meta == request.meta and decoded.callback == spider.parse_detail
    assert decoded.headers == request.headers and decoded.priority == request.priority


def _payload(spider, **changes):
    data = json.loads(serializer.encode(_request(spider), spider))
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s: pickle.dumps({"url": "http://x"}), "not a JSON request payload"),
        (lambda s: _payload(s, _class="os.system"), "unexpected keys"),
        (lambda s: _payload(s, callback="__init__"), "is not an API callback"),
        (lambda s: _payload(s, url="file:///etc/passwd"), "not http"),
        (lambda s: _payload(s, body_b64="***"), "not base64"),
        (lambda s: _payload(s, v=2), "unknown payload version"),
        (lambda s: _payload(s, priority="high"), "wrong type"),
        (lambda s: json.dumps([1, 2]), "wrong type"),
    ],
)
def test_foreign_payloads_are_refused(spider, make, reason):
    with pytest.raises(serializer.PayloadRefused, match=reason):
        serializer.decode(make(spider), spider)


def test_only_api_callbacks_can_be_queued(spider):
    request = _request(spider)
    request.callback = print
    with pytest.raises(ValueError, match="API callbacks"):
        serializer.encode(request, spider)


def test_the_queued_body_is_base64_of_the_unsigned_body(spider):
    data = json.loads(serializer.encode(_request(spider), spider))
    body = base64.b64decode(data["body_b64"])
    assert b"session" not in body and b"sign" not in body

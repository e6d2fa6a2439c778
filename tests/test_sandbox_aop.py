"""The sandbox's 1688 AOP gateway, over HTTP: signature, timestamp, token and app key checks, the
listing and detail shapes, the derived price tiers, errors and faults."""

from __future__ import annotations

import math
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from shopcrawl.platforms.aop import protocol as aop
from shopcrawl.platforms.aop.dialect import AopDialect
from shopcrawl.sandbox.aop import dumps, product_info, sale_terms
from shopcrawl.sandbox.shop import Shop
from shopcrawl.validation import check_item
from tests.sandbox_proc import APP_KEY, APP_SECRET, SESSION, Reply, _send, run_sandbox

ITEMS = 60


def call(sb, api, params, *, secret=APP_SECRET, token=SESSION, app_key=APP_KEY, now=None, get=False,
         signature=None) -> Reply:  # fmt: skip
    path = aop.url_path(api, app_key)
    signed = aop.signed_params(params, path=path, secret=secret, access_token=token,
                               now=now or datetime.now(UTC))  # fmt: skip
    if signature is not None:
        signed["_aop_signature"] = signature
        if not signature:
            del signed["_aop_signature"]
    url = f"{sb.base}/openapi/{path}"
    data = urllib.parse.urlencode(signed)
    if get:
        return _send(urllib.request.Request(url + "?" + data), 30)
    return _send(urllib.request.Request(url, data=data.encode(), method="POST"), 30)


def listing(sb, page_no, page_size=20, **kwargs):
    params = {"pageNo": str(page_no), "pageSize": str(page_size), "orderByCondition": "ID",
              "orderByType": "ASC", "statusList": '["published"]'}  # fmt: skip
    return call(sb, aop.LISTING_API, params, **kwargs)


def detail(sb, product_id, **kwargs):
    return call(sb, aop.DETAIL_API, {"productID": str(product_id), "webSite": "1688"}, **kwargs)


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox("--items", str(ITEMS), "--seed", "5", "--vanish-items", "2", "--max-skus", "4") as sb:
        yield sb


def test_listing_pages_every_on_sale_item_once_by_id(sandbox):
    ids = []
    for page_no in range(1, math.ceil(ITEMS / 20) + 1):
        reply = listing(sandbox, page_no)
        assert reply.status == 200 and reply.content_type.startswith("application/json")
        body = aop.loads(reply.body)
        assert body["success"] is True and body["totalRecords"] == ITEMS
        ids += [row["productID"] for row in body["result"]]
    assert ids == sorted(ids) and len(set(ids)) == ITEMS
    assert set(ids) == {item["num_iid"] for item in sandbox.shop()}  # the items TOP sees
    assert aop.loads(listing(sandbox, 4).body)["result"] == []  # past the end
    big = aop.loads(listing(sandbox, 1, page_size=50).body)
    assert len(big["result"]) == 20  # pageSize above 20 is served as 20
    row = big["result"][0]
    assert set(row) >= {"productID", "subject", "status", "modifyTime", "createTime", "saleInfo"}
    assert aop.parse_time(row["modifyTime"]).utcoffset() == timedelta(hours=8)


def test_get_is_served_too(sandbox):
    reply = listing(sandbox, 1, get=True)
    assert reply.status == 200 and len(aop.loads(reply.body)["result"]) == 20


def test_every_detail_maps_to_a_valid_item_with_tiers(sandbox):
    dialect = AopDialect()
    vanished = set(sandbox.bad_items()["vanish"])
    shop = {item["num_iid"]: item for item in sandbox.shop()}
    quote_types = set()
    for num_iid, truth in shop.items():
        reply = detail(sandbox, num_iid)
        assert reply.status == 200
        payload, error = dialect.decode(aop.DETAIL_API, reply.status, reply.body)
        if num_iid in vanished:
            assert payload is None and error is not None and error.code == "PRODUCT_NOT_EXIST"
            continue
        assert error is None and payload is not None
        (info,) = dialect.detail_records(payload)
        item = dialect.to_item(info, {}, seller_id="demo", run_id="r")
        assert check_item(item) is None, num_iid
        assert (item.num_iid, item.title, item.num) == (num_iid, truth["title"], truth["num"])
        assert (
            2 <= len(item.price_tiers) <= 3 and item.min_order_quantity == item.price_tiers[0].start_quantity
        )
        fens = [tier.price_fen for tier in item.price_tiers]
        assert fens == sorted(fens, reverse=True) and item.price_tiers[0].price_fen == item.price_fen
        assert [s.sku_id for s in item.skus] == [s["sku_id"] for s in truth["skus"]]
        assert all(len(s.spec_id) == 32 for s in item.skus)
        assert all(img.startswith("img/ibank/") for img in item.item_imgs)
        quote_types.add(info["saleInfo"]["quoteType"])
        assert b'"price":"' not in reply.body  # prices are JSON numbers
    assert quote_types == {0, 1}


def test_tier_prices_with_one_decimal_are_served_as_json_numbers():
    shop = Shop(seed=5, items=ITEMS, max_skus=4)
    texts = [price for item in shop.all_items() for _, price in sale_terms(item)[2]]
    assert any(t.endswith("0") and not t.endswith(".00") for t in texts)  # e.g. 19.90 -> 19.9
    item = next(iter(shop.all_items()))
    body = dumps({"productInfo": product_info(item)})
    first = product_info(item)["saleInfo"]["priceRanges"][0]["price"]
    assert f'"price":{first}'.encode() in body


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"secret": "wrong"}, 400, "gw.SignatureInvalid"),
        ({"signature": ""}, 400, "gw.ParamMissing"),
        ({"signature": "0" * 40}, 400, "gw.SignatureInvalid"),
        ({"app_key": "other-key"}, 400, "gw.AppKeyNotFound"),
        ({"now": datetime.now(UTC) - timedelta(seconds=700)}, 400, "gw.TimestampInvalid"),
        ({"now": datetime.now(UTC) + timedelta(seconds=700)}, 400, "gw.TimestampInvalid"),
        ({"token": "expired-token"}, 401, "401"),
    ],
)
def test_gateway_checks(sandbox, kwargs, status, code):
    reply = listing(sandbox, 1, **kwargs)
    assert reply.status == status
    body = aop.loads(reply.body)
    assert body["error_code"] == code and body["error_message"] and "success" not in body
    error = aop.decode(reply.status, reply.body)[1]
    assert error is not None and aop.classify(error).value == ("auth" if code == "401" else "fatal")


def test_unknown_api_and_bad_params(sandbox):
    reply = call(sandbox, "alibaba.product.nothing", {"x": "1"})
    assert (reply.status, aop.loads(reply.body)["error_code"]) == (400, "gw.APIUnsupported")
    reply = call(sandbox, aop.DETAIL_API, {"webSite": "1688"})
    assert (reply.status, aop.loads(reply.body)["error_code"]) == (400, "gw.ParamMissing")


def test_timestamp_within_600_seconds_is_accepted(sandbox):
    assert listing(sandbox, 1, now=datetime.now(UTC) - timedelta(seconds=500)).status == 200


def test_stats_count_aop_calls_by_api(sandbox):
    before = sandbox.reset_stats()
    assert before["calls"] == {}
    listing(sandbox, 1)
    detail(sandbox, 1)  # unknown: PRODUCT_NOT_EXIST in HTTP 200
    stats = sandbox.stats()
    assert stats["calls"] == {aop.LISTING_API: 1, aop.DETAIL_API: 1}
    assert stats["outcomes"] == {"ok": 1, "business": 1}


def test_qps_limit_answers_429_qps_over_limit():
    with run_sandbox("--items", "20", "--qps", "2", "--ban-seconds", "30") as sb:
        replies = [listing(sb, 1) for _ in range(4)]
    assert [r.status for r in replies[:2]] == [200, 200]
    assert replies[2].status == replies[3].status == 429
    error = aop.decode(429, replies[3].body)[1]
    assert error is not None and error.code == "gw.QpsOverLimit" and aop.classify(error).value == "ban"


def test_quota_spent_answers_429_no_usage_left():
    with run_sandbox("--items", "20", "--quota-ban-seconds", "60") as sb:
        reply = listing(sb, 1)
    assert reply.status == 429 and aop.loads(reply.body)["error_code"] == "gw.NoUsageLeftError"


def test_faults_apply():
    with run_sandbox("--items", "20", "--rate-5xx", "1") as sb:
        assert listing(sb, 1).status in (502, 503)
    with run_sandbox("--items", "20", "--rate-truncated", "1") as sb:
        reply = listing(sb, 1)
        assert reply.status == 200
        with pytest.raises(ValueError):
            aop.decode(200, reply.body)
        assert sb.stats()["outcomes"] == {"truncated": 1}

"""1688 AOP: the §2.3 signature vectors, the queued and the authorised request, the listing plan,
and the decoder on a JSON fixture for every case (tests/fixtures/aop/)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from shopcrawl.config import ShopcrawlConfig
from shopcrawl.platforms import get_dialect
from shopcrawl.platforms.aop import protocol as aop
from shopcrawl.platforms.aop.dialect import AopDialect, AopLister
from shopcrawl.platforms.base import ApiError, Call, Credentials, EnvelopeError, ErrorClass, HttpStatus

FIXTURES = Path(__file__).parent / "fixtures" / "aop"
CREDS = Credentials("1000000", "test123", "abc-token", "")
NOW = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)  # 1704081600000 ms


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- §2.3 signature -----------------------------------------------------------------------------


def test_doc_vector():
    params = {"b": "2", "a": "1"}
    assert aop.signing_message("param2/1/system/currentTime/1000000", params) == (
        "param2/1/system/currentTime/1000000a1b2"
    )
    assert aop.sign("param2/1/system/currentTime/1000000", params, "test123") == (
        "33E54F4F7B989E3E0E912D3FBD2F1A03CA7CCE88"
    )


def test_listing_and_detail_vectors():
    listing = {
        "pageNo": "1",
        "pageSize": "20",
        "access_token": "abc-token",
        "_aop_timestamp": "1704081600000",
    }
    path = aop.url_path(aop.LISTING_API, "1000000")
    assert path == "param2/1/com.alibaba.product/alibaba.product.list.get/1000000"
    assert aop.signing_message(path, listing) == (
        path + "_aop_timestamp1704081600000access_tokenabc-tokenpageNo1pageSize20"
    )
    assert aop.sign(path, listing, "test123") == "D2664BBB11EEA1E48DDE0110928126F51A7E3B57"
    detail = {"productID": "557235167116", "webSite": "1688", "access_token": "abc-token"}
    assert aop.sign(aop.url_path(aop.DETAIL_API, "1000000"), detail, "test123") == (
        "E800FC7CEA899A4BA0A37D5F10BDEA8CA2C6380B"
    )


def test_sort_order_trap_sorts_key_value_strings_not_keys():
    params = {"a": "z", "ab": "c"}
    assert aop.signing_message("param2/1/x/y/1000000", params).endswith("abcaz")
    assert aop.sign("param2/1/x/y/1000000", params, "test123") == "0C65D5351F8B4E1946D34C53E45C13BAAC2F9F81"
    top_style = "param2/1/x/y/1000000" + "".join(k + v for k, v in sorted(params.items()))
    digest = hmac.new(b"test123", top_style.encode(), hashlib.sha1).hexdigest().upper()
    assert digest == "523597AB4207A5362E79588A43AE5A58C6FC6754"
    assert digest != aop.sign("param2/1/x/y/1000000", params, "test123")


def test_empty_values_and_the_signature_itself_are_not_signed():
    path = "param2/1/x/y/1000000"
    assert aop.sign(path, {"a": "1", "b": "", "_aop_signature": "X"}, "s") == aop.sign(path, {"a": "1"}, "s")


def test_signed_params_carry_token_timestamp_and_signature():
    path = aop.url_path(aop.LISTING_API, "1000000")
    params = aop.signed_params({"pageNo": "1", "pageSize": "20", "x": ""}, path=path, secret="test123",
                               access_token="abc-token", now=NOW)  # fmt: skip
    assert params["_aop_timestamp"] == "1704081600000"
    assert params["_aop_signature"] == "D2664BBB11EEA1E48DDE0110928126F51A7E3B57"
    assert "x" not in params


# --- requests -----------------------------------------------------------------------------------


def test_queued_request_holds_business_params_only_and_authorise_adds_the_rest():
    dialect = AopDialect()
    call = Call(aop.DETAIL_API, {"productID": "557235167116", "webSite": "1688"})
    request = dialect.request("http://h/openapi", call, callback=None, meta={}, priority=0)
    assert request.method == "POST"
    assert request.url == "http://h/openapi/param2/1/com.alibaba.product/alibaba.product.get/"
    assert dict(parse_qsl(request.body.decode())) == {"productID": "557235167116", "webSite": "1688"}
    url, body = dialect.authorise(request, CREDS, NOW)
    assert url == "http://h/openapi/param2/1/com.alibaba.product/alibaba.product.get/1000000"
    sent = dict(parse_qsl(body.decode()))
    assert sent["access_token"] == "abc-token" and sent["_aop_timestamp"] == "1704081600000"
    unsigned = {k: v for k, v in sent.items() if k != "_aop_signature"}
    path = "param2/1/com.alibaba.product/alibaba.product.get/1000000"
    assert sent["_aop_signature"] == aop.sign(path, unsigned, "test123")
    del unsigned["_aop_timestamp"]  # without the timestamp: the §2.3 vector
    assert aop.sign(path, unsigned, "test123") == "E800FC7CEA899A4BA0A37D5F10BDEA8CA2C6380B"
    assert "abc-token" not in url and "test123" not in url + body.decode()
    again = dialect.request("http://h/openapi/", call, callback=None, meta={}, priority=0)
    assert (again.url, again.body) == (request.url, request.body)  # a stable fingerprint


def test_registered_with_its_limits_and_config_defaults():
    dialect = get_dialect("1688")
    assert isinstance(dialect, AopDialect)
    assert (dialect.name, dialect.platform, dialect.source) == ("1688", "1688", "1688")
    assert dialect.production_url == "https://gw.open.1688.com/openapi"
    assert (dialect.page_size_max, dialect.detail_batch_max, dialect.needs_session) == (20, 1, True)
    assert dialect.page_cap_default >= 10**9
    config = ShopcrawlConfig.from_settings({}, api="1688")
    assert (config.page_size, config.detail_batch, config.api_url) == (20, 1, aop.PRODUCTION_URL)
    call = dialect.detail_call(["7"], {"7": {}})
    assert call == Call(aop.DETAIL_API, {"productID": "7", "webSite": "1688"})
    with pytest.raises(ValueError):
        dialect.detail_call(["7", "8"], {})


# --- listing plan -------------------------------------------------------------------------------


def test_first_call_orders_by_id_ascending_published_only():
    call = AopLister(page_size=20).first()
    assert call.api == aop.LISTING_API
    assert call.params == {"pageNo": "1", "pageSize": "20", "orderByCondition": "ID", "orderByType": "ASC",
                           "statusList": '["published"]'}  # fmt: skip


def test_page_one_plans_every_page_from_the_size_actually_served():
    lister = AopLister(page_size=20)
    payload, _ = aop.decode(200, fixture("listing_page1.json"))  # 45 declared, 2 served
    assert payload is not None
    page = lister.on_page(lister.first(), payload, 0)
    assert page.declared_total == 45 and page.queries == 1
    assert [int(c.params["pageNo"]) for c in page.follow] == list(range(2, 24))  # ceil(45/2)
    assert {c.params["pageSize"] for c in page.follow} == {"20"}
    assert page.page_key == "page|1" and len(page.rows) == 2
    later = lister.on_page(page.follow[0], payload, 2)
    assert later.follow == [] and later.declared_total is None and later.page_key == "page|2"
    assert lister.on_page(page.follow[0], payload, 2).page_key == later.page_key  # deterministic


def test_a_page_past_the_end_is_empty_and_plans_nothing():
    lister = AopLister(page_size=20)
    payload, _ = aop.decode(200, fixture("listing_past_end.json"))
    assert payload is not None
    page = lister.on_page(lister.call(3), payload, 40)
    assert (page.rows, page.follow) == ([], [])
    with pytest.raises(EnvelopeError, match="first page is empty"):
        lister.on_page(lister.first(), payload, 0)


def test_an_empty_shop_is_one_call():
    page = AopLister(page_size=20).on_page(AopLister(page_size=20).first(), {"success": True,
                                           "totalRecords": 0, "result": []}, 0)  # fmt: skip
    assert (page.declared_total, page.follow) == (0, [])


@pytest.mark.parametrize("name", ["listing_no_total.json", "listing_result_not_list.json"])
def test_listing_of_another_shape_is_a_named_envelope_error(name):
    payload, error = aop.decode(200, fixture(name))
    assert error is None and payload is not None
    lister = AopLister(page_size=20)
    with pytest.raises(EnvelopeError):
        lister.on_page(lister.first(), payload, 0)


def test_listed_ids_and_fields():
    dialect = AopDialect()
    payload, _ = aop.decode(200, fixture("listing_page1.json"))
    assert payload is not None
    row = payload["result"][0]
    assert dialect.listed_id(row) == 623456789012
    assert dialect.listed_id({"productID": -1}) == "productID is not positive: -1"
    fields = dialect.listed_fields(row)
    assert fields["modifyTime"] == "20261101120000000+0800" and "saleInfo" not in fields
    json.dumps(fields)  # rides in the request meta (and the Redis queue)


# --- decode -------------------------------------------------------------------------------------


def test_detail_decodes_prices_exactly():
    payload, error = aop.decode(200, fixture("detail_quote_sku.json"))
    assert error is None and payload is not None
    (record,) = AopDialect().detail_records(payload)
    assert AopDialect().record_id(record) == "623456789012"
    assert record["skuInfos"][1]["price"] == Decimal("19.9")
    assert isinstance(record["saleInfo"]["priceRanges"][0]["price"], Decimal)


def test_detail_without_product_info_is_an_envelope_error():
    payload, _ = aop.decode(200, fixture("detail_no_product_info.json"))
    assert payload is not None
    with pytest.raises(EnvelopeError, match="productInfo"):
        AopDialect().detail_records(payload)


def test_business_error_is_about_the_one_product():
    payload, error = aop.decode(200, fixture("error_product_not_exist.json"))
    assert payload is None and error is not None
    assert (error.code, error.msg, error.source) == ("PRODUCT_NOT_EXIST", "商品不存在", "1688")
    assert aop.classify(error) is ErrorClass.RECORD


@pytest.mark.parametrize(
    ("name", "status", "code", "kind", "hint"),
    [
        ("gw_signature_invalid.json", 400, "gw.SignatureInvalid", ErrorClass.FATAL, "SHOPCRAWL_APP_SECRET"),
        ("gw_param_missing.json", 400, "gw.ParamMissing", ErrorClass.FATAL, "SHOPCRAWL_"),
        ("gw_api_unsupported.json", 400, "gw.APIUnsupported", ErrorClass.FATAL, "SHOPCRAWL_API_URL"),
        ("gw_acl_decline.json", 400, "gw.APIACLDecline", ErrorClass.FATAL, "SHOPCRAWL_APP_KEY"),
        ("gw_timestamp_invalid.json", 400, "gw.TimestampInvalid", ErrorClass.FATAL, "clock"),
        ("gw_unauthorised.json", 401, "401", ErrorClass.AUTH, "auth login --api 1688"),
        ("gw_unauthorised.json", 400, "401", ErrorClass.AUTH, "access_token"),
        ("gw_qps_over_limit.json", 429, "gw.QpsOverLimit", ErrorClass.BAN, ""),
        ("gw_no_usage_left.json", 429, "gw.NoUsageLeftError", ErrorClass.FATAL, "quota"),
    ],
)
def test_gateway_errors(name, status, code, kind, hint):
    payload, error = aop.decode(status, fixture(name))
    assert payload is None and isinstance(error, ApiError)
    assert error.code == code and error.source == "1688"
    assert aop.classify(error) is kind
    assert hint in aop.fatal_hint(error)
    dialect = AopDialect()
    assert dialect.classify(error, max_ban_wait=60) is kind


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_left_to_the_http_rules(status):
    for name in ("http_502.html", "gw_qps_over_limit.json"):
        with pytest.raises(HttpStatus) as info:
            aop.decode(status, fixture(name))
        assert info.value.status == status


def test_a_4xx_without_a_gateway_body_is_left_to_the_http_rules():
    with pytest.raises(HttpStatus):
        aop.decode(404, fixture("http_502.html"))
    with pytest.raises(HttpStatus):
        aop.decode(403, b'{"message": "forbidden"}')


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("no_success_flag.json", "success"),
        ("error_success_false_no_code.json", "errorCode"),
        ("gw_error_code_object.json", "error_code"),
    ],
)
def test_bodies_of_another_shape_are_named_envelope_errors(name, match):
    with pytest.raises(EnvelopeError, match=match):
        aop.decode(200, fixture(name))


def test_truncated_or_garbled_json_is_a_value_error():
    body = fixture("detail_quote_sku.json")
    with pytest.raises(ValueError):
        aop.decode(200, body[: len(body) // 2])
    with pytest.raises(ValueError):
        aop.decode(200, b"\xff\xfe<html>upstream reset</html>")
    with pytest.raises(EnvelopeError):
        aop.decode(200, b"[1, 2]")


def test_times():
    moment = aop.parse_time("20261101120000000+0800")
    assert moment == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(hours=8)
    assert aop.parse_time("20121222222222+0800").second == 22
    assert aop.parse_time("20261101120000123+0800").microsecond == 123000
    assert aop.format_time(moment) == "20261101120000000+0800"
    for bad in ("2026-11-01 12:00:00", "20261101120000000", "2026110112000+0800"):
        with pytest.raises(ValueError):
            aop.parse_time(bad)

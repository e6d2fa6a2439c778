"""The gateway dialect's pure parts on JSON fixtures: envelope, loose types, error classes, items."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from scrapy import Request

from shopcrawl.platforms import get_dialect
from shopcrawl.platforms.base import Call, Credentials, EnvelopeError, ErrorClass, HttpStatus, InvalidItem
from shopcrawl.platforms.gateway import protocol as gw
from shopcrawl.validation import check_item

FIXTURES = Path(__file__).parent / "fixtures" / "gateway"
TAOBAO = get_dialect("gateway", "taobao")
B2B = get_dialect("gateway", "1688")
CREDS = Credentials("gw-key-K1", "gw-secret-S1", "", "hmac-sha256")
LISTED = {"sales": "7", "listed_at": "2026-11-02T03:04:05+00:00"}


def body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def test_the_queued_request_holds_no_credential_and_authorise_adds_both():
    request = TAOBAO.request(
        "http://gw.test/", Call("item_get", {"num_iid": "5", "is_promotion": "1"}), callback=None, meta={}
    )
    assert request.url == "http://gw.test/taobao/item_get/?is_promotion=1&num_iid=5"
    assert "key" not in request.url and "secret" not in request.url
    url, raw = TAOBAO.authorise(request, CREDS, datetime.now(UTC))
    assert url == request.url + "&key=gw-key-K1&secret=gw-secret-S1"
    assert raw == request.body == b""
    assert isinstance(request, Request) and TAOBAO.needs_session is False


def test_detail_calls_are_one_item_each_and_taobao_asks_for_the_promotion_price():
    assert TAOBAO.detail_call(["5"], {}).params == {"num_iid": "5", "is_promotion": "1"}
    assert B2B.detail_call(["5"], {}).params == {"num_iid": "5"}
    assert TAOBAO.detail_batch_max == B2B.detail_batch_max == 1
    with pytest.raises(ValueError):
        TAOBAO.detail_call(["5", "6"], {})


def test_a_listing_with_string_types_decodes():
    payload, error = TAOBAO.decode("item_search_shop", 200, body("listing_strings"))
    assert error is None and payload is not None
    rows = payload["items"]["item"]
    assert [TAOBAO.listed_id(row) for row in rows] == [652000000001, 652000000002]


def test_a_listing_with_numbers_decodes_prices_exactly():
    assert gw.loads(body("listing_numbers"))["items"]["item"][0]["price"] == Decimal("199.90")
    payload, error = TAOBAO.decode("item_search_shop", 200, body("listing_numbers"))
    assert error is None and payload is not None
    rows = payload["items"]["item"]
    assert [row["price"] for row in rows] == ["199.90", "0.10"]  # the digits as sent, no float on the way
    assert TAOBAO.listed_id(rows[0]) == 652000000003
    json.dumps(payload)  # JSON-safe: it rides in queues and stores


def test_a_listing_page_past_the_end_or_the_cap_is_an_empty_page():
    payload, error = TAOBAO.decode("item_search_shop", 200, body("listing_no_result"))
    assert error is None and payload == {"items": {"item": []}, "no_result": True}


def test_an_item_that_is_gone_is_a_record_error():
    payload, error = TAOBAO.decode("item_get", 200, body("detail_gone"))
    assert payload is None and error is not None
    assert (error.code, error.msg, error.source) == ("2000", "商品没找到", "gateway")
    assert TAOBAO.classify(error, max_ban_wait=600) is ErrorClass.RECORD


@pytest.mark.parametrize("code", ["4000", "4001", "4002"])
def test_transient_codes_retry(code):
    _, error = TAOBAO.decode("item_get", 200, body(f"error_{code}"))
    assert error is not None and TAOBAO.classify(error, max_ban_wait=600) is ErrorClass.RETRY


@pytest.mark.parametrize(
    ("code", "names"),
    [
        ("4003", "seller_id"),
        ("4004", "SHOPCRAWL_APP_KEY"),
        ("4005", "SHOPCRAWL_APP_SECRET"),
        ("4006", "re-enable"),
        ("4007", "quota"),
        ("4010", "does not know"),
    ],
)
def test_other_codes_stop_the_crawl_with_a_hint(code, names):
    _, error = TAOBAO.decode("item_search_shop", 200, body(f"error_{code}"))
    assert error is not None and error.code == code
    assert TAOBAO.classify(error, max_ban_wait=600) is ErrorClass.FATAL
    assert names in TAOBAO.fatal_hint(error, max_ban_wait=600)


def test_a_numeric_error_code_is_read_as_its_string():
    assert gw.error_code({"error_code": 0}) == "0000"
    assert gw.error_code({"error_code": 2000}) == "2000"


@pytest.mark.parametrize("name", ["bad_no_error_code"])
def test_a_body_without_the_envelope_is_an_envelope_error(name):
    with pytest.raises(EnvelopeError):
        TAOBAO.decode("item_search_shop", 200, body(name))


def test_garbage_and_http_errors():
    with pytest.raises(ValueError):
        TAOBAO.decode("item_get", 200, b'{"item": {"num_iid": 1')
    with pytest.raises(HttpStatus):
        TAOBAO.decode("item_get", 502, b"<html>502</html>")


@pytest.mark.parametrize(("value", "expected"), [("12", 12), (12, 12), (Decimal("12"), 12), (" 7 ", 7)])
def test_integers_come_as_strings_or_numbers(value, expected):
    assert gw.to_int(value, "n") == expected


@pytest.mark.parametrize("value", [True, None, "1.5", Decimal("1.5"), "١٢", "", 1.0])
def test_what_is_not_an_integer(value):
    with pytest.raises(ValueError):
        gw.to_int(value, "n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), (True, True), (1, True), ("1", True), ("false", False), (False, False), (0, False)],
)
def test_booleans_come_as_strings_numbers_or_booleans(value, expected):
    assert gw.to_bool(value, "b") is expected
    with pytest.raises(ValueError):
        gw.to_bool("yes please", "b")


def test_a_taobao_item_maps_onto_the_item_schema():
    payload, _ = TAOBAO.decode("item_get", 200, body("detail_taobao"))
    assert payload is not None
    [record] = TAOBAO.detail_records(payload)
    assert TAOBAO.record_id(record) == "652000000001"
    item = TAOBAO.to_item(record, LISTED, seller_id="36558682", run_id="r")
    assert (item.num_iid, item.price, item.price_fen, item.num, item.sold_quantity) == (
        652000000001,
        "25.80",
        2580,
        30,
        7,
    )
    assert item.modified == datetime(2026, 9, 30, 15, 59, 59, tzinfo=UTC)
    assert [(s.sku_id, s.price, s.price_fen, s.quantity) for s in item.skus] == [
        (4000000000001, "25.80", 2580, 10),
        (4000000000002, "26.80", 2680, 20),
    ]
    assert item.skus[1].props == {"颜色": "黑色", "尺码": "XL"}
    assert item.item_imgs == ["https://img.example.invalid/1.jpg", "https://img.example.invalid/1-1.jpg"]
    assert item.extras["seller_id"] == "2201234567" and item.extras["shop_id"] == "36558682"
    assert item.extras["props_list"] == {"1627207:28320": "颜色:白色", "20509:28314": "尺码:XL"}
    assert item.extras["modified_source"] == "modified_time"
    assert item.price_tiers == [] and item.min_order_quantity is None
    assert check_item(item) is None


def test_a_1688_item_has_price_tiers_and_a_minimum_order():
    payload, _ = B2B.decode("item_get", 200, body("detail_1688"))
    assert payload is not None
    item = B2B.to_item(B2B.detail_records(payload)[0], LISTED, seller_id="b2b-1234", run_id="r")
    assert (item.price, item.price_fen, item.min_order_quantity) == ("12.50", 1250, 2)
    assert [(t.start_quantity, t.price, t.price_fen) for t in item.price_tiers] == [
        (2, "12.50", 1250),
        (10, "11.80", 1180),
        (100, "9.90", 990),
    ]
    assert item.platform == "1688" and check_item(item) is None


def test_without_modified_time_the_listing_time_stands_in_and_says_so():
    payload, _ = TAOBAO.decode("item_get", 200, body("detail_no_modified"))
    assert payload is not None
    item = TAOBAO.to_item(payload["item"], LISTED, seller_id="s", run_id="r")
    assert item.modified == datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
    assert item.extras["modified_source"] == "listed_at"
    with pytest.raises(InvalidItem) as caught:
        TAOBAO.to_item(payload["item"], {}, seller_id="s", run_id="r")
    assert caught.value.field == "modified_time"


def test_listed_fields_carry_the_listing_time():
    fields = TAOBAO.listed_fields({"num_iid": "1", "sales": "3", "price": "1.00", "title": "x"})
    assert fields["sales"] == "3" and "title" not in fields
    assert datetime.fromisoformat(fields["listed_at"]).tzinfo is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": 1.5}, "price"),
        ({"price": "-1.00"}, "price"),
        ({"num": "many"}, "num"),
        ({"modified_time": "yesterday"}, "modified_time"),
        ({"skus": {"sku": [{"sku_id": "x", "price": "1.00", "quantity": 1}]}}, "skus[0].sku_id"),
        ({"priceRange": [[10, "1.00"], [2, "2.00"]]}, "priceRange[1]"),
        ({"title": None}, "title"),
    ],
)
def test_a_bad_record_names_its_field(change, field):
    record = {**json.loads(body("detail_1688"))["item"], "price": "12.50", **change}
    with pytest.raises(InvalidItem) as caught:
        B2B.to_item(record, LISTED, seller_id="s", run_id="r")
    assert caught.value.field == field

"""TOP envelopes, the error table and the system params, on bodies shaped like the real API's.

Complements test_top.py (inline shapes, a few error rows) and test_signing.py (digest vectors)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shopcrawl.platforms import top
from shopcrawl.platforms.top import ApiError, ErrorClass

FIXTURES = Path(__file__).parent / "fixtures" / "top"


def body(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def error_of(name: str) -> ApiError:
    payload, error = top.unwrap(body(name), top.LISTING_METHOD)
    assert payload is None and error is not None
    return error


# --- envelopes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "root"),
    [
        (top.LISTING_METHOD, "items_onsale_get_response"),
        (top.DETAIL_METHOD, "items_seller_list_get_response"),
        ("taobao.item.seller.get", "item_seller_get_response"),
        ("taobao.items.onsale.get.tmall", "items_onsale_get_tmall_response"),
    ],
)
def test_response_root_of_each_api_we_call(method, root):
    assert top.response_root(method) == root


@pytest.mark.parametrize("name", ["listing_wrapped.json", "listing_simplified.json"])
def test_listing_page_decodes_the_same_in_both_shapes(name):
    payload, error = top.unwrap(body(name), top.LISTING_METHOD)
    assert error is None
    assert payload["total_results"] == 3
    items = top.unwrap_list(payload, "items", "item")
    assert [item["num_iid"] for item in items] == [520813250866, 520813250867, 520813250901]
    assert items[0]["price"] == "25.80" and items[2]["price"] == "5"


def test_wrapped_and_simplified_listing_give_equal_items():
    wrapped, _ = top.unwrap(body("listing_wrapped.json"), top.LISTING_METHOD)
    simple, _ = top.unwrap(body("listing_simplified.json"), top.LISTING_METHOD)
    assert top.unwrap_list(wrapped, "items", "item") == top.unwrap_list(simple, "items", "item")


@pytest.mark.parametrize("name", ["listing_empty.json", "listing_empty_simplified.json"])
def test_a_shop_with_no_items_has_no_items_key_and_decodes_to_an_empty_page(name):
    payload, error = top.unwrap(body(name), top.LISTING_METHOD)
    assert error is None and "items" not in payload
    assert payload["total_results"] == 0
    assert top.unwrap_list(payload, "items", "item") == []


def test_detail_batch_decodes_items_skus_and_images():
    payload, error = top.unwrap(body("detail_wrapped.json"), top.DETAIL_METHOD)
    assert error is None and "total_results" not in payload
    items = top.unwrap_list(payload, "items", "item")
    assert [item["num_iid"] for item in items] == [520813250866, 520813250901]
    skus = top.unwrap_list(items[0], "skus", "sku")
    assert [sku["sku_id"] for sku in skus] == [4000000000001, 4000000000002, 4000000000003]
    assert len(top.unwrap_list(items[0], "item_imgs", "item_img")) == 2
    assert top.unwrap_list(items[1], "skus", "sku") == []  # an item without SKUs has no skus key


def test_detail_batch_simplified_lists_are_plain_arrays():
    payload, _ = top.unwrap(body("detail_simplified.json"), top.DETAIL_METHOD)
    (item,) = top.unwrap_list(payload, "items", "item")
    assert [sku["price"] for sku in top.unwrap_list(item, "skus", "sku")] == ["25.80", "30.80"]
    assert top.unwrap_list(item, "item_imgs", "item_img")[0]["position"] == 0


@pytest.mark.parametrize(
    "value", ["x", 3, {"item": "x"}, {"item": {"num_iid": 1}}], ids=["str", "int", "str-in", "obj-in"]
)
def test_a_list_of_another_shape_is_refused(value):
    with pytest.raises(top.EnvelopeError, match="items"):
        top.unwrap_list({"items": value}, "items", "item")


def test_a_success_root_that_is_not_an_object_is_refused():
    with pytest.raises(top.EnvelopeError, match="items_onsale_get_response"):
        top.unwrap({"items_onsale_get_response": [1, 2]}, top.LISTING_METHOD)


def test_error_envelope_keeps_every_field():
    error = error_of("error_session.json")
    assert error == ApiError(
        code="27",
        msg="Invalid Session",
        sub_code="invalid-sessionkey",
        sub_msg="非法或过期的SessionKey参数，请使用有效的SessionKey参数",
        request_id="zt1bx2lq0pmg",
    )


def test_error_code_sent_as_a_string_or_a_number_is_the_same_code():
    assert error_of("error_string_code.json").code == "25"
    assert error_of("error_string_code.json").sub_code == ""


def test_error_description_for_the_log():
    assert error_of("error_ban.json").describe() == (
        "TOP error 7 (App Call Limited) accesscontrol.limited-by-api-access-count: "
        "This ban will last for 3 more seconds"
    )
    assert ApiError("25", "Invalid Signature").describe() == "TOP error 25 (Invalid Signature)"


# --- the error table ------------------------------------------------------------------------------


def test_ban_with_seconds_is_waited_out():
    error = error_of("error_ban.json")
    assert (error.ban_seconds, error.app_wide) == (3, False)
    assert top.classify(error, max_ban_wait=600) is ErrorClass.BAN


def test_app_wide_ban_within_the_max_wait_is_waited_out_for_every_api():
    error = error_of("error_ban_app.json")
    assert (error.ban_seconds, error.app_wide) == (31062, True)
    assert top.classify(error, max_ban_wait=40000) is ErrorClass.BAN


def test_ban_of_exactly_the_max_wait_is_waited_out_and_one_second_more_is_fatal():
    error = error_of("error_ban.json")
    assert top.classify(error, max_ban_wait=3) is ErrorClass.BAN
    assert top.classify(error, max_ban_wait=2) is ErrorClass.FATAL


def test_ban_longer_than_the_max_wait_stops_with_a_hint_naming_the_setting():
    error = error_of("error_ban_app.json")
    assert top.classify(error, max_ban_wait=600) is ErrorClass.FATAL
    hint = top.fatal_hint(error, max_ban_wait=600)
    assert "31062 s" in hint and "SHOPCRAWL_MAX_BAN_WAIT=600" in hint


def test_ban_without_seconds_is_retried():
    error = error_of("error_ban_no_seconds.json")
    assert error.ban_seconds is None
    assert top.classify(error, max_ban_wait=600) is ErrorClass.RETRY


@pytest.mark.parametrize(
    "error",
    [
        ApiError("15", "Remote service error", "isp.top-remote-service-unavailable"),
        ApiError("50", "Remote service error", "isp.service-error"),
        ApiError("520", "Remote service error", "isp.remote-service-timeout"),
        ApiError("8", "App Call Exceeds Limited Frequency"),
        ApiError("10", "Service Currently Unavailable"),
        ApiError("520", "Remote service timeout"),
    ],
    ids=lambda e: f"{e.code}-{e.sub_code or 'none'}",
)
def test_transient_errors_are_retried(error):
    assert top.classify(error, max_ban_wait=600) is ErrorClass.RETRY


def test_isp_fixture_is_retried():
    assert top.classify(error_of("error_isp.json"), max_ban_wait=600) is ErrorClass.RETRY


@pytest.mark.parametrize(
    "error",
    [
        ApiError("15", "Remote service error", "isv.item-data-error", "商品数据异常 num_iid=1"),
        ApiError("50", "Remote service error", "isv.invalid-parameter", "非法参数"),
    ],
    ids=["15", "50"],
)
def test_isv_errors_are_recorded_not_retried(error):
    assert top.classify(error, max_ban_wait=600) is ErrorClass.RECORD


def test_isv_fixture_is_recorded():
    assert top.classify(error_of("error_isv.json"), max_ban_wait=600) is ErrorClass.RECORD


FATAL_HINT_WORDS = {
    11: "SHOPCRAWL_APP_KEY",
    12: "re-authorise",
    21: "bug",
    22: "SHOPCRAWL_API_URL",
    24: "SHOPCRAWL_SIGN_METHOD",
    25: "SHOPCRAWL_APP_SECRET",
    26: "SHOPCRAWL_SESSION",
    27: "SHOPCRAWL_SESSION",
    28: "SHOPCRAWL_APP_KEY",
    29: "SHOPCRAWL_APP_KEY",
    31: "clock",
    33: "SHOPCRAWL_API_URL",
}
GENERIC_FATAL = (13, 23, 30, 32, 34, 40, 41, 42, 43)


@pytest.mark.parametrize("code", sorted(FATAL_HINT_WORDS))
def test_fatal_codes_stop_with_a_hint_saying_what_to_fix(code):
    error = ApiError(str(code), "refused")
    # 27 (invalid session) is refreshed first when it has expired; its hint applies when it cannot be.
    expected = ErrorClass.AUTH if code == 27 else ErrorClass.FATAL
    assert top.classify(error, max_ban_wait=600) is expected
    assert FATAL_HINT_WORDS[code] in top.fatal_hint(error, max_ban_wait=600)


@pytest.mark.parametrize("code", GENERIC_FATAL)
def test_other_validation_codes_stop_and_point_at_the_error_text(code):
    error = ApiError(str(code), "refused")
    assert top.classify(error, max_ban_wait=600) is ErrorClass.FATAL
    assert top.fatal_hint(error, max_ban_wait=600) == "the API refused the request; see the error text"


@pytest.mark.parametrize(
    "error",
    [
        ApiError("11", "Insufficient ISV Permissions", "isv.permission-ip-whitelist-limit"),
        ApiError("40", "Missing Required Arguments", "isv.missing-parameter"),
        ApiError("41", "Invalid Arguments", "isv.invalid-parameter", "page_no*page_size must not exceed"),
    ],
    ids=["11", "40", "41"],
)
def test_a_fatal_code_wins_over_an_isv_sub_code(error):
    assert top.classify(error, max_ban_wait=600) is ErrorClass.FATAL


def test_session_fixture_is_an_auth_error_and_names_the_login():
    error = error_of("error_session.json")
    assert top.classify(error, max_ban_wait=600) is ErrorClass.AUTH
    hint = top.fatal_hint(error, max_ban_wait=600)
    assert "shopcrawl auth login --api top" in hint and "SHOPCRAWL_SESSION" in hint


# --- time -----------------------------------------------------------------------------------------


@pytest.fixture
def host_zone(monkeypatch):
    """Run the test with the host in a zone far from GMT+8 (and with daylight saving time)."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2024, 1, 1, 4, 0, 0, tzinfo=UTC), "2024-01-01 12:00:00"),
        (datetime(2024, 1, 1, 20, 30, 5, tzinfo=UTC), "2024-01-02 04:30:05"),
        (datetime(2024, 7, 1, 9, 0, 0, tzinfo=timezone(timedelta(hours=-7))), "2024-07-02 00:00:00"),
        (datetime(2024, 3, 1, 0, 0, 0, 999999, tzinfo=top.GMT8), "2024-03-01 00:00:00"),
    ],
)
def test_timestamps_are_gmt8_whatever_the_host_zone(host_zone, moment, text):
    assert top.format_timestamp(moment) == text


def test_a_naive_datetime_is_refused(host_zone):
    with pytest.raises(ValueError, match="timezone-aware"):
        top.format_timestamp(datetime(2024, 1, 1, 12, 0, 0))


def test_api_times_are_read_as_gmt8_whatever_the_host_zone(host_zone):
    moment = top.parse_time("2024-01-01 12:00:00")
    assert moment.utcoffset() == timedelta(hours=8)
    assert moment.timestamp() == 1704081600  # 2024-01-01 04:00:00 UTC
    assert top.format_timestamp(moment) == "2024-01-01 12:00:00"


@pytest.mark.parametrize("text", ["2024/01/01 12:00:00", "2024-01-01T12:00:00", "1704081600000", ""])
def test_other_time_formats_are_refused(text):
    with pytest.raises(ValueError):
        top.parse_time(text)


# --- system params --------------------------------------------------------------------------------

VECTOR_D_BUSINESS = {
    "method": "taobao.items.onsale.get",
    "fields": "num_iid,title,price,num,modified",
    "page_no": "1",
    "page_size": "200",
    "order_by": "modified:asc",
    "q": "连衣裙",
}


def _signed(business, sign_method="hmac-sha256"):
    return top.signed_params(
        business,
        app_key="12345678",
        secret="helloworld",
        session="test-session",
        sign_method=sign_method,
        now=datetime(2024, 1, 1, 4, 0, 0, tzinfo=UTC),
    )


def test_signed_params_reproduce_the_protocol_vector():
    params = _signed(VECTOR_D_BUSINESS)
    assert params == {
        **VECTOR_D_BUSINESS,
        "app_key": "12345678",
        "session": "test-session",
        "timestamp": "2024-01-01 12:00:00",
        "v": "2.0",
        "format": "json",
        "sign_method": "hmac-sha256",
        "sign": "75D55E674CC2B3077C547FE923E7272B4B0B705899B80BFAD71DAA49C5E8A204",
    }


def test_signed_params_drop_empty_and_blank_values():
    params = _signed({**VECTOR_D_BUSINESS, "cid": "", "seller_cids": "   "})
    assert "cid" not in params and "seller_cids" not in params
    assert params["sign"] == "75D55E674CC2B3077C547FE923E7272B4B0B705899B80BFAD71DAA49C5E8A204"


def test_caller_supplied_system_params_are_replaced_or_dropped():
    forged = {
        "app_key": "someone-else",
        "session": "stolen",
        "timestamp": "2000-01-01 00:00:00",
        "v": "1.0",
        "format": "xml",
        "sign_method": "md5",
        "sign": "0" * 32,
        "partner_id": "x",
        "target_app_key": "y",
        "simplify": "true",
    }
    params = _signed({**VECTOR_D_BUSINESS, **forged})
    assert params["sign"] == "75D55E674CC2B3077C547FE923E7272B4B0B705899B80BFAD71DAA49C5E8A204"
    assert not {"partner_id", "target_app_key", "simplify"} & set(params)
    assert (params["app_key"], params["session"], params["format"]) == ("12345678", "test-session", "json")


@pytest.mark.parametrize(
    ("sign_method", "sign"),
    [("md5", "9AC8871EB2641E778958D686C580D9A2"), ("hmac", "C9975039633CBC4645A278792DB90D31")],
)
def test_signed_params_use_the_configured_sign_method(sign_method, sign):
    params = _signed(VECTOR_D_BUSINESS, sign_method)
    assert (params["sign_method"], params["sign"]) == (sign_method, sign)

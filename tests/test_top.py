"""TOP envelopes and the error table, on JSON shaped like the real API's."""

import pytest

from shopcrawl.money import PriceError, format_fen, to_fen
from shopcrawl.platforms import top
from shopcrawl.platforms.top import ApiError, ErrorClass


def test_response_root_naming():
    assert top.response_root("taobao.items.onsale.get") == "items_onsale_get_response"
    assert top.response_root("tmall.x.y") == "tmall_x_y_response"


def test_unwrap_wrapped_and_simplified_shapes():
    wrapped = {"items_onsale_get_response": {"total_results": 1, "items": {"item": [{"num_iid": 1}]}}}
    payload, error = top.unwrap(wrapped, top.LISTING_METHOD)
    assert error is None and top.unwrap_list(payload, "items", "item") == [{"num_iid": 1}]
    payload, error = top.unwrap({"total_results": 1, "items": [{"num_iid": 2}]}, top.LISTING_METHOD)
    assert top.unwrap_list(payload, "items", "item") == [{"num_iid": 2}]
    payload, _ = top.unwrap({"items_onsale_get_response": {"total_results": 0}}, top.LISTING_METHOD)
    assert top.unwrap_list(payload, "items", "item") == []


def test_unwrap_error_envelope():
    body = {
        "error_response": {
            "code": 7,
            "msg": "App Call Limited",
            "sub_code": "accesscontrol.limited-by-api-access-count",
            "sub_msg": "This ban will last for 3 more seconds",
        }
    }
    payload, error = top.unwrap(body, top.LISTING_METHOD)
    assert payload is None and error is not None
    assert error.ban_seconds == 3 and not error.app_wide


@pytest.mark.parametrize("body", [[], "x", {"error_response": "x"}, {"error_response": {"code": "abc"}}])
def test_unwrap_refuses_garbage(body):
    with pytest.raises(top.EnvelopeError):
        top.unwrap(body, top.LISTING_METHOD)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ApiError(
                "7",
                "App Call Limited",
                "accesscontrol.limited-by-api-access-count",
                "This ban will last for 2 more seconds",
            ),
            ErrorClass.BAN,
        ),
        (
            ApiError(
                "7",
                "App Call Limited",
                "accesscontrol.limited-by-app-access-count",
                "This ban will last for 31062 more seconds",
            ),
            ErrorClass.FATAL,
        ),
        (ApiError("15", "Remote service error", "isp.top-remote-connection-timeout"), ErrorClass.RETRY),
        (ApiError("15", "Remote service error", "isv.item-data-error", "bad item"), ErrorClass.RECORD),
        (ApiError("25", "Invalid Signature"), ErrorClass.FATAL),
        (ApiError("27", "Invalid Session", "invalid-sessionkey"), ErrorClass.AUTH),
        (ApiError("27", "Invalid session:session-expired", "session-expired"), ErrorClass.AUTH),
        (ApiError("26", "Missing Session"), ErrorClass.FATAL),
        (ApiError("29", "Invalid App Key"), ErrorClass.FATAL),
        (
            ApiError("11", "Insufficient ISV Permissions", "isv.permission-api-package-empty"),
            ErrorClass.FATAL,
        ),
        (ApiError("10", "Service Currently Unavailable"), ErrorClass.RETRY),
    ],
)
def test_error_table(error, expected):
    assert top.classify(error, max_ban_wait=600) is expected


def test_fatal_hints_name_the_setting_to_fix():
    assert "SHOPCRAWL_APP_SECRET" in top.fatal_hint(ApiError("25", "Invalid Signature"), max_ban_wait=600)
    assert "SHOPCRAWL_SESSION" in top.fatal_hint(ApiError("27", "Invalid Session"), max_ban_wait=600)


@pytest.mark.parametrize(
    ("text", "fen", "formatted"),
    [
        ("25.80", 2580, "25.80"),
        ("0.01", 1, "0.01"),
        ("5", 500, "5.00"),
        ("5.5", 550, "5.50"),
        ("99999999.99", 9999999999, "99999999.99"),
    ],
)
def test_prices_are_exact_fen(text, fen, formatted):
    assert to_fen(text) == fen
    assert format_fen(fen) == formatted


@pytest.mark.parametrize("text", ["-1.00", "abc", "1.234", "1e3", "", "1,00"])
def test_bad_prices_are_refused(text):
    with pytest.raises(PriceError):
        to_fen(text)


def test_float_prices_are_refused():
    with pytest.raises(PriceError):
        to_fen(25.8)  # type: ignore[arg-type]

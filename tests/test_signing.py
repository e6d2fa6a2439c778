"""The signing vectors of the protocol doc (§1.3.1), all three methods, and send-time signing."""

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from shopcrawl.downloadermiddlewares.signing import SigningMiddleware
from shopcrawl.http import api_request
from shopcrawl.platforms import top

VECTOR_A = {
    "method": "taobao.item.seller.get",
    "app_key": "12345678",
    "session": "test",
    "timestamp": "2016-01-01 12:00:00",
    "format": "json",
    "v": "2.0",
    "fields": "num_iid,title,nick,price,num",
    "num_iid": "11223344",
}
VECTOR_D = {
    "method": "taobao.items.onsale.get",
    "app_key": "12345678",
    "session": "test-session",
    "timestamp": "2024-01-01 12:00:00",
    "format": "json",
    "v": "2.0",
    "fields": "num_iid,title,price,num,modified",
    "page_no": "1",
    "page_size": "200",
    "order_by": "modified:asc",
    "q": "连衣裙",
}


@pytest.mark.parametrize(
    ("params", "method", "expected"),
    [
        (VECTOR_A, "md5", "66987CB115214E59E6EC978214934FB8"),
        (VECTOR_A, "hmac", "D56D7858309C31B6251083A874D48273"),
        (VECTOR_A, "hmac-sha256", "04DB15AD0774D5CFCE2C837DE43E3FCEA9011ED74F3038FB6AB5F3C4CEA119E8"),
        (VECTOR_D, "hmac-sha256", "75D55E674CC2B3077C547FE923E7272B4B0B705899B80BFAD71DAA49C5E8A204"),
        (VECTOR_D, "md5", "9AC8871EB2641E778958D686C580D9A2"),
        (VECTOR_D, "hmac", "C9975039633CBC4645A278792DB90D31"),
        (
            {**VECTOR_D, "simplify": "true", "cid": ""},
            "hmac-sha256",
            "AD584D53CB8650D3071587C51646B1982E67D5EB555CCCC83CE081A39CAB1EE7",
        ),
    ],
)
def test_protocol_vectors(params, method, expected):
    assert top.sign({**params, "sign_method": method}, "helloworld", method) == expected


def test_timestamp_is_gmt8_whatever_the_host_zone():
    moment = datetime(2024, 1, 1, 4, 0, 0, tzinfo=UTC)
    assert top.format_timestamp(moment) == "2024-01-01 12:00:00"


def test_unknown_sign_method_is_refused():
    with pytest.raises(ValueError, match="sign_method"):
        top.sign({"a": "b"}, "s", "sha1")


def _middleware(**settings):
    base = {
        "SHOPCRAWL_APP_KEY": "12345678",
        "SHOPCRAWL_APP_SECRET": "helloworld",
        "SHOPCRAWL_SESSION": "test-session",
    }
    crawler = get_crawler(settings_dict={**base, **settings})
    return SigningMiddleware.from_crawler(crawler)


def test_request_is_signed_at_send_time_and_restored_after():
    mw = _middleware(SHOPCRAWL_SIGN_METHOD="md5")
    request = api_request(
        "http://127.0.0.1:1/router/rest",
        top.LISTING_METHOD,
        {"fields": "num_iid", "q": "连衣裙"},
        callback=None,
        meta={},
    )
    unsigned = request.body
    assert b"session" not in unsigned and b"sign" not in unsigned and b"timestamp" not in unsigned
    mw.process_request(request)
    sent = dict(parse_qsl(request.body.decode()))
    assert sent["sign_method"] == "md5" and sent["session"] == "test-session"
    assert sent["sign"] == top.sign(sent, "helloworld", "md5")
    assert "session" not in request.url and "sign" not in request.url
    mw.process_response(request, TextResponse(request.url, body=b"{}", request=request))
    assert request.body == unsigned


def test_a_retry_is_signed_afresh():
    mw = _middleware()
    request = api_request(
        "http://127.0.0.1:1/router/rest", top.DETAIL_METHOD, {"num_iids": "1"}, callback=None, meta={}
    )
    mw.process_request(request)
    first = dict(parse_qsl(request.body.decode()))
    mw.process_exception(request, TimeoutError())
    retry = request.copy()
    assert b"sign=" not in retry.body
    mw.process_request(retry)
    assert dict(parse_qsl(retry.body.decode()))["sign_method"] == first["sign_method"] == "hmac-sha256"


def test_requests_that_are_not_api_calls_are_left_alone():
    from scrapy import Request

    mw = _middleware()
    request = Request("http://127.0.0.1:1/other", method="POST", body=b"x=1")
    mw.process_request(request)
    assert request.body == b"x=1"


def test_fingerprint_is_stable_across_signing_and_time():
    from scrapy.utils.request import RequestFingerprinter

    fingerprinter = RequestFingerprinter()
    mw = _middleware()

    def make():
        return api_request(
            "http://127.0.0.1:1/router/rest", top.DETAIL_METHOD, {"num_iids": "1,2"}, callback=None, meta={}
        )

    request, twin = make(), make()
    before = fingerprinter.fingerprint(twin)
    mw.process_request(request)
    mw.process_response(request, TextResponse(request.url, body=b"{}", request=request))
    assert RequestFingerprinter().fingerprint(request) == before

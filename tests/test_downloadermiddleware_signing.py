"""SigningMiddleware through a crawler: what goes on the wire, what stays in the queue.

test_signing.py holds the digest vectors and the basic sign/restore cycle; these pin the rest."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from scrapy import Request
from scrapy.http import TextResponse
from scrapy.settings import Settings
from scrapy.utils.conf import build_component_list
from scrapy.utils.test import get_crawler

from shopcrawl.config import ConfigError
from shopcrawl.downloadermiddlewares.signing import SigningMiddleware
from shopcrawl.http import api_request
from shopcrawl.platforms import top

URL = "http://127.0.0.1:1/router/rest"
SECRET = "app-secret-never-on-the-wire"
SESSION = "seller-session-61002"
CREDENTIALS = {
    "SHOPCRAWL_APP_KEY": "12345678",
    "SHOPCRAWL_APP_SECRET": SECRET,
    "SHOPCRAWL_SESSION": SESSION,
}


@pytest.fixture
def mw():
    return SigningMiddleware.from_crawler(get_crawler(settings_dict=CREDENTIALS))


def listing_request(**params):
    business = {"fields": ",".join(top.LISTING_FIELDS), "page_no": "3", "page_size": "200", **params}
    return api_request(URL, top.LISTING_METHOD, business, callback=None, meta={"page_no": 3})


def sent(request) -> dict[str, str]:
    return dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))


def test_the_sent_body_has_every_system_param_and_a_valid_signature(mw):
    request = listing_request(q="连衣裙")
    before = datetime.now(top.GMT8).replace(microsecond=0)
    mw.process_request(request)
    params = sent(request)
    assert set(params) == {
        "method",
        "fields",
        "page_no",
        "page_size",
        "q",
        "app_key",
        "session",
        "timestamp",
        "v",
        "format",
        "sign_method",
        "sign",
    }
    assert (params["method"], params["q"], params["page_no"]) == (top.LISTING_METHOD, "连衣裙", "3")
    assert (params["app_key"], params["session"]) == ("12345678", SESSION)
    assert (params["v"], params["format"], params["sign_method"]) == ("2.0", "json", "hmac-sha256")
    assert params["sign"] == top.sign(params, SECRET, "hmac-sha256")
    assert len(params["sign"]) == 64 and params["sign"] == params["sign"].upper()
    stamp = top.parse_time(params["timestamp"])
    assert before <= stamp <= datetime.now(top.GMT8) + timedelta(seconds=1)


def test_the_secret_is_never_sent_and_the_url_is_unchanged(mw):
    request = listing_request()
    mw.process_request(request)
    assert request.url == URL
    assert SECRET not in request.body.decode() and SECRET not in request.url
    assert SESSION not in request.url
    assert request.headers[b"Content-Type"] == b"application/x-www-form-urlencoded;charset=UTF-8"


def test_system_params_in_a_queued_body_cannot_override_the_configured_ones(mw):
    request = listing_request(session="someone-elses-session", app_key="other", simplify="true")
    mw.process_request(request)
    params = sent(request)
    assert (params["session"], params["app_key"]) == (SESSION, "12345678")
    assert "simplify" not in params
    assert params["sign"] == top.sign(params, SECRET, "hmac-sha256")


def test_the_response_comes_back_unchanged_and_the_request_unsigned(mw):
    request = listing_request()
    unsigned = request.body
    mw.process_request(request)
    response = TextResponse(URL, body=b'{"items_onsale_get_response":{}}', request=request)
    assert mw.process_response(request, response) is response
    assert request.body == unsigned


def test_after_an_exception_the_request_is_unsigned(mw):
    request = listing_request()
    unsigned = request.body
    mw.process_request(request)
    assert mw.process_exception(request, ConnectionRefusedError()) is None
    assert request.body == unsigned
    assert b"session" not in request.body and b"sign" not in request.body


def test_a_second_pass_does_not_sign_twice(mw):
    request = listing_request()
    unsigned = request.body
    mw.process_request(request)
    first = request.body
    mw.process_request(request)
    assert request.body == first
    mw.process_response(request, TextResponse(URL, body=b"{}", request=request))
    assert request.body == unsigned  # the unsigned form, not the once-signed one


@pytest.mark.parametrize(
    "request_",
    [
        Request("http://127.0.0.1:1/router/rest", method="POST", body=b"method=taobao.items.onsale.get"),
        Request("http://127.0.0.1:1/status"),
        Request(URL, method="POST", body=b"a=1", meta={"shopcrawl": "not a dict"}),
        Request(URL, method="POST", body=b"a=1", meta={"shopcrawl": {"page_no": 1}}),
    ],
    ids=["no-meta", "get", "meta-not-dict", "meta-without-api"],
)
def test_other_requests_are_left_alone(mw, request_):
    body = request_.body
    assert mw.process_request(request_) is None
    assert request_.body == body
    response = TextResponse(request_.url, body=b"{}", request=request_)
    assert mw.process_response(request_, response) is response
    assert request_.body == body


@pytest.mark.parametrize("sign_method", top.SIGN_METHODS)
def test_the_configured_sign_method_is_used(sign_method):
    crawler = get_crawler(settings_dict={**CREDENTIALS, "SHOPCRAWL_SIGN_METHOD": sign_method})
    mw = SigningMiddleware.from_crawler(crawler)
    request = listing_request()
    mw.process_request(request)
    params = sent(request)
    assert params["sign_method"] == sign_method
    assert params["sign"] == top.sign(params, SECRET, sign_method)


def test_missing_credentials_stop_the_crawl_before_anything_is_sent():
    with pytest.raises(ConfigError, match="SHOPCRAWL_SESSION"):
        SigningMiddleware.from_crawler(
            get_crawler(settings_dict={k: v for k, v in CREDENTIALS.items() if k != "SHOPCRAWL_SESSION"})
        )


def test_signing_is_the_last_downloader_middleware_before_the_network():
    """So no other middleware ever sees a signed request, and retries copy the unsigned one."""
    settings = Settings()
    settings.setmodule("shopcrawl.settings", priority="project")
    order = build_component_list(settings.getwithbase("DOWNLOADER_MIDDLEWARES"))
    assert order[-1] == "shopcrawl.downloadermiddlewares.signing.SigningMiddleware"

"""SigningMiddleware with the gateway dialect: the key and secret are on the wire only."""

from __future__ import annotations

from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from shopcrawl.downloadermiddlewares.signing import SigningMiddleware
from shopcrawl.platforms import get_dialect
from shopcrawl.platforms.base import Call

KEY, SECRET = "gw-key-7Hq", "gw-secret-2Zp"
SETTINGS = {"SHOPCRAWL_API": "gateway", "SHOPCRAWL_APP_KEY": KEY, "SHOPCRAWL_APP_SECRET": SECRET}


def _request():
    dialect = get_dialect("gateway", "1688")
    call = Call("item_search_shop", {"shop_id": "b2b-1", "page": "2", "sort": "bid"})
    return dialect.request("http://127.0.0.1:1", call, callback=None, meta={"shopcrawl": {"api": call.api}})


def test_the_key_and_secret_are_added_at_send_time_and_taken_back_after():
    mw = SigningMiddleware.from_crawler(get_crawler(settings_dict=SETTINGS))  # no session needed
    request = _request()
    unsigned = request.url
    assert unsigned == "http://127.0.0.1:1/1688/item_search_shop/?page=2&shop_id=b2b-1&sort=bid"
    mw.process_request(request)
    assert request.url == f"{unsigned}&key={KEY}&secret={SECRET}"
    response = TextResponse(request.url, body=b"{}", request=request)
    restored = mw.process_response(request, response)
    assert request.url == restored.url == unsigned


def test_a_timeout_message_with_the_sent_url_gets_the_unsigned_one():
    mw = SigningMiddleware.from_crawler(get_crawler(settings_dict=SETTINGS))
    request = _request()
    unsigned = request.url
    mw.process_request(request)
    error = TimeoutError(f"Getting {request.url} took longer than 30 seconds.")
    mw.process_exception(request, error)
    assert str(error) == f"Getting {unsigned} took longer than 30 seconds."
    assert KEY not in str(error) and SECRET not in str(error) and request.url == unsigned

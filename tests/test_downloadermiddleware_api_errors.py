"""ApiErrorsMiddleware through a crawler: every TOP outcome in the table of its docstring, on the
JSON fixtures, with the stats and the bans (local BanBook) a crawl relies on."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from scrapy import Request, signals
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response, TextResponse

from shopcrawl.downloadermiddlewares.api_errors import MAX_BAN_RESENDS, ApiErrorsMiddleware
from shopcrawl.downloadermiddlewares.ratelimit import BanBook
from shopcrawl.http import GAVE_UP_CODE, META_KEY, ApiResponse, api_request
from shopcrawl.platforms import top
from shopcrawl.runs import FATAL_STAT
from tests.test_extension_run import make_crawler, reactor_shutdown, run_in_reactor  # noqa: F401

FIXTURES = Path(__file__).parent / "fixtures" / "top"
URL = "http://127.0.0.1:1/router/rest"
LISTING, DETAIL = top.LISTING_METHOD, top.DETAIL_METHOD


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def crawler(tmp_path):
    return make_crawler(
        tmp_path, SHOPCRAWL_API_URL=URL, RETRY_TIMES=2, SHOPCRAWL_BACKOFF_BASE=0.5, SHOPCRAWL_BACKOFF_MAX=8
    )


@pytest.fixture
def mw(crawler):
    return ApiErrorsMiddleware.from_crawler(crawler)


def call(method=LISTING, **meta):
    return api_request(URL, method, {"page_no": "1"}, callback=None, meta={"page_no": 1, **meta})


def answer(mw, request, content: bytes, status=200, cls=TextResponse):
    response = cls(request.url, status=status, body=content, request=request)
    return run_in_reactor(lambda: mw.process_response(request, response))


def stats(crawler) -> dict:
    return {k: v for k, v in crawler.stats.get_stats().items() if k.startswith(("shopcrawl/", "retry/"))}


@pytest.mark.parametrize("name", ["listing_wrapped.json", "listing_simplified.json"])
@pytest.mark.parametrize("cls", [TextResponse, Response])
def test_a_success_envelope_becomes_a_top_response_with_its_payload(crawler, mw, name, cls):
    request = call()
    response = answer(mw, request, body(name), cls=cls)
    assert isinstance(response, ApiResponse) and response.error is None
    assert response.payload["total_results"] == 3
    assert top.unwrap_list(response.payload, "items", "item")[1]["title"] == "苏泊尔不粘锅家用"
    assert response.request is request and response.text.startswith("{")
    assert stats(crawler) == {
        "shopcrawl/api/calls": 1,
        f"shopcrawl/api/calls/{LISTING}": 1,
        f"shopcrawl/api/ok/{LISTING}": 1,
    }


def test_an_isv_error_goes_to_the_callback_to_record_without_a_retry(crawler, mw):
    response = answer(mw, call(DETAIL), body("error_isv.json"))
    assert isinstance(response, ApiResponse) and response.payload is None
    assert (response.error.code, response.error.sub_code) == ("15", "isv.item-data-error")
    assert stats(crawler) == {
        "shopcrawl/api/calls": 1,
        f"shopcrawl/api/calls/{DETAIL}": 1,
        "shopcrawl/api/error/15": 1,
    }


def assert_retry(retry, request, attempt, backoff):
    assert isinstance(retry, Request) and not isinstance(retry, Response)
    assert (retry.url, retry.body, retry.dont_filter) == (request.url, request.body, True)
    assert retry.meta["retry_times"] == attempt
    delay = retry.meta[META_KEY]["not_before"] - time.time()
    assert backoff / 2 - 0.1 <= delay <= backoff  # exponential backoff with jitter in [0.5, 1]
    assert retry.meta[META_KEY]["page_no"] == 1
    assert retry.meta[META_KEY]["api"] == request.meta[META_KEY]["api"]


@pytest.mark.parametrize(
    ("content", "status", "reason"),
    [
        (body("error_isp.json"), 200, "api_isp.top-remote-connection-timeout"),
        (body("error_platform_busy.json"), 200, "api_520"),
        (body("error_ban_no_seconds.json"), 200, "api_accesscontrol.limited-by-dynamic-access-count"),
        (b"<html>502 Bad Gateway</html>", 503, "http_503"),
        (b"", 429, "http_429"),
        (b"", 408, "http_408"),
        (body("listing_wrapped.json")[:57], 200, "bad_json"),
        (b"\x89PNG\r\n\x1a\n\x00\x00garbled", 200, "bad_json"),
        (b'[{"total_results": 3}]', 200, "bad_json"),
        (b'{"error_response": {"code": "many"}}', 200, "bad_json"),
    ],
    ids=[
        "isp",
        "code-520",
        "ban-no-seconds",
        "503",
        "429",
        "408",
        "truncated",
        "garbled",
        "list",
        "bad-code",
    ],
)
def test_transient_failures_are_retried_with_backoff_then_given_up(crawler, mw, content, status, reason):
    request = call()
    first = answer(mw, request, content, status)
    assert_retry(first, request, 1, 0.5)
    second = answer(mw, first, content, status)
    assert_retry(second, request, 2, 1.0)
    gave_up = answer(mw, second, content, status)
    assert isinstance(gave_up, ApiResponse) and gave_up.payload is None
    assert gave_up.request is second
    assert (gave_up.error.code, gave_up.error.msg) == (GAVE_UP_CODE, f"gave up after 2 retries: {reason}")
    counted = stats(crawler)
    assert counted["shopcrawl/api/gave_up"] == 1 and counted["shopcrawl/api/calls"] == 3
    assert counted["retry/count"] == 2 and counted[f"retry/reason_count/{reason}"] == 2
    assert counted["retry/max_reached"] == 1


def test_a_call_given_up_after_isp_errors_keeps_the_last_sub_code(mw):
    request = call(DETAIL)
    request.meta["retry_times"] = 2
    gave_up = answer(mw, request, body("error_isp.json"))
    assert (gave_up.error.code, gave_up.error.sub_code) == (GAVE_UP_CODE, "isp.top-remote-connection-timeout")
    assert gave_up.error.request_id == "zt1bx2lq0pme"


def test_a_connection_error_is_retried_and_an_ignored_request_is_not(crawler, mw):
    request = call()
    retry = mw.process_exception(request, TimeoutError("timed out"))
    assert_retry(retry, request, 1, 0.5)
    assert crawler.stats.get_value("retry/reason_count/TimeoutError") == 1
    assert mw.process_exception(request, IgnoreRequest("x")) is None


def remaining(crawler, method):
    return run_in_reactor(lambda: BanBook.for_crawler(crawler).remaining(method))


def test_a_ban_holds_that_api_for_its_seconds_and_resends_the_same_call(crawler, mw):
    request = call()
    resent = answer(mw, request, body("error_ban.json"))
    assert isinstance(resent, Request) and resent is not request
    assert (resent.url, resent.body, resent.dont_filter) == (request.url, request.body, True)
    assert resent.meta[META_KEY]["ban_resends"] == 1 and "retry_times" not in resent.meta
    assert 2.9 <= remaining(crawler, LISTING) <= 3.0
    assert remaining(crawler, DETAIL) == 0
    again = answer(mw, resent, body("error_ban.json"))  # the same ban seen again: counted once
    assert again.meta[META_KEY]["ban_resends"] == 2
    counted = stats(crawler)
    assert (counted["shopcrawl/ban/count"], counted["shopcrawl/api/error/7"]) == (1, 2)
    assert "retry/count" not in counted
    assert BanBook.for_crawler(crawler).waited_seconds == pytest.approx(3.0, abs=0.05)


def test_an_app_wide_ban_holds_every_api(crawler, mw):
    resent = answer(mw, call(DETAIL), body("error_ban_app_short.json"))
    assert resent.meta[META_KEY]["ban_resends"] == 1
    assert 4.9 <= remaining(crawler, LISTING) <= 5.0
    assert 4.9 <= remaining(crawler, "taobao.any.other.api") <= 5.0
    assert crawler.stats.get_value("shopcrawl/ban/count") == 1


def test_non_api_requests_pass_untouched(crawler, mw):
    for request in (Request("http://127.0.0.1:1/status"), Request(URL, meta={META_KEY: {"page_no": 1}})):
        response = TextResponse(request.url, status=503, body=b"not json", request=request)
        assert run_in_reactor(lambda r=request, s=response: mw.process_response(r, s)) is response
        assert mw.process_exception(request, TimeoutError()) is None
    assert stats(crawler) == {}


class Closed(list):
    def spider_closed(self, reason):
        self.append(reason)


@pytest.fixture
def crawling(crawler):
    """The crawler with a real engine and its spider open, as during a crawl (nothing is sent)."""
    crawler.engine = crawler._create_engine()
    crawler.closed = Closed()
    crawler.signals.connect(crawler.closed.spider_closed, signal=signals.spider_closed)
    run_in_reactor(crawler.engine.open_spider_async)
    return crawler


def wait_closed(crawler):
    async def until_closed():
        while not crawler.closed:
            await asyncio.sleep(0.01)

    run_in_reactor(until_closed)
    return list(crawler.closed)


@pytest.mark.parametrize(
    ("content", "status", "line"),
    [
        (
            body("error_session.json"),
            200,
            "TOP error 27 (Invalid Session) invalid-sessionkey: "
            "非法或过期的SessionKey参数，请使用有效的SessionKey参数 -> SHOPCRAWL_SESSION was refused "
            "and shopcrawl cannot refresh it: set a valid one, or unset it and "
            "run shopcrawl auth login --api top",
        ),
        (
            body("error_string_code.json"),
            200,
            "TOP error 25 (Invalid Signature) -> the signature was refused; "
            "check SHOPCRAWL_APP_SECRET and SHOPCRAWL_SIGN_METHOD",
        ),
        (
            body("error_permission.json"),
            200,
            "TOP error 11 (Insufficient isv permissions) isv.permission-api-package-empty: "
            "请开通对应的API包 -> the app lacks permission for this API; "
            "grant the API package to SHOPCRAWL_APP_KEY",
        ),
        (
            body("error_ban_app.json"),
            200,
            "TOP error 7 (App Call Limited) accesscontrol.limited-by-app-access-count: "
            "This ban will last for 31062 more seconds -> "
            "the app's call quota is banned for 31062 s, longer than SHOPCRAWL_MAX_BAN_WAIT=600; "
            "wait, raise the quota, or raise that setting",
        ),
        (b"Not Found", 404, f"{URL} answered HTTP 404; check SHOPCRAWL_API_URL"),
    ],
    ids=["session", "signature", "permission", "long-ban", "http-404"],
)
def test_a_fatal_error_stops_the_crawl_with_one_line_naming_the_fix(crawling, content, status, line, caplog):
    mw = ApiErrorsMiddleware.from_crawler(crawling)
    with pytest.raises(IgnoreRequest, match="^" + line.replace("(", r"\(").replace(")", r"\)")):
        answer(mw, call(), content, status)
    assert crawling.stats.get_value(FATAL_STAT) == line
    assert f"shopcrawl stopped: {line}" in caplog.text
    assert wait_closed(crawling) == ["fatal_error"]
    assert crawling.stats.get_value("finish_reason") == "fatal_error"
    # Responses still in flight are dropped with the same line, not counted, not retried.
    calls = crawling.stats.get_value("shopcrawl/api/calls")
    with pytest.raises(IgnoreRequest, match="SHOPCRAWL"):
        answer(mw, call(DETAIL), body("listing_wrapped.json"))
    with pytest.raises(IgnoreRequest, match="SHOPCRAWL"):
        mw.process_exception(call(), TimeoutError())
    assert crawling.stats.get_value("shopcrawl/api/calls") == calls
    assert caplog.text.count("shopcrawl stopped:") == 1


def test_a_ban_that_never_ends_stops_the_crawl(crawling):
    mw = ApiErrorsMiddleware.from_crawler(crawling)
    request = call(ban_resends=MAX_BAN_RESENDS)
    with pytest.raises(IgnoreRequest, match=f"stayed banned through {MAX_BAN_RESENDS} waits"):
        answer(mw, request, body("error_ban.json"))
    assert crawling.stats.get_value(FATAL_STAT) == (
        f"{LISTING} stayed banned through {MAX_BAN_RESENDS} waits; check the app's quota"
    )
    assert wait_closed(crawling) == ["fatal_error"]


def test_the_body_is_decoded_as_utf8_whatever_the_headers_say(mw):
    content = json.dumps(
        {"items_onsale_get_response": {"total_results": 1, "q": "连衣裙"}}, ensure_ascii=False
    )
    request = call()
    raw = TextResponse(
        URL,
        body=content.encode("utf-8"),
        request=request,
        headers={"Content-Type": "text/plain; charset=gbk"},
    )
    response = run_in_reactor(lambda: mw.process_response(request, raw))
    assert response.payload["q"] == "连衣裙" and "连衣裙" in response.text

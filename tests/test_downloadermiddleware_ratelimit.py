"""RateLimitMiddleware called directly: spacing, the 1-second window cap, bans, retry times, and the
re-stamping of an approval seen too late. Every wait is bounded; timings are only asserted from below
(a busy machine makes calls later, never earlier)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from scrapy import Request
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from shopcrawl.distributed import lua
from shopcrawl.downloadermiddlewares import ratelimit
from shopcrawl.downloadermiddlewares.ratelimit import NOT_BEFORE, RateLimitMiddleware
from shopcrawl.http import META_KEY, api_request
from shopcrawl.platforms import top

URL = "http://127.0.0.1:1/router/rest"
SLACK = 0.002  # timer granularity: asyncio may wake a hair before the ms it was asked for


def mw(qps: float = 50) -> RateLimitMiddleware:
    return RateLimitMiddleware.from_crawler(get_crawler(settings_dict={"SHOPCRAWL_QPS": qps}))


def call(method: str = top.DETAIL_METHOD) -> Request:
    return api_request(URL, method, {"num_iids": "1"}, callback=None, meta={})


def run(coro, timeout: float = 10):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_calls_are_spaced_at_95_percent_of_the_limit():
    limiter = mw(50)
    interval = 1 / (50 * 0.95)

    async def main() -> list[float]:
        start = time.monotonic()
        done: list[float] = []

        async def one() -> None:
            await limiter.process_request(call())
            done.append(time.monotonic() - start)

        await asyncio.gather(*(one() for _ in range(10)))
        return sorted(done)

    done = run(main())
    for n, at in enumerate(done):
        assert at >= n * interval - SLACK, (n, at)


def test_no_limit_and_non_api_requests_pass_at_once():
    async def main() -> float:
        start = time.monotonic()
        unlimited = mw(0)
        for _ in range(200):
            await unlimited.process_request(call())
        await mw(1).process_request(Request("http://127.0.0.1:1/other"))
        return time.monotonic() - start

    assert run(main()) < 5  # nothing slept: 200 calls at 1/s would take minutes


def test_no_1_second_window_holds_more_than_94_percent_of_the_limit():
    limiter = mw(50)
    assert limiter.window_cap == 47

    async def main() -> float:
        now = time.monotonic()
        limiter._sent.extend([now - 0.9] * 47)  # a full window whose calls expire 0.1 s from now
        start = time.monotonic()
        await limiter.process_request(call())
        return time.monotonic() - start

    waited = run(main())
    assert waited >= 0.1 - 0.01 - SLACK
    assert len(limiter._sent) == 1  # the 47 old sends left the window; this one is recorded


def test_a_ban_is_waited_out_for_its_api_and_an_app_wide_ban_for_all():
    limiter = mw(0)

    async def timed(method: str) -> float:
        start = time.monotonic()
        await limiter.process_request(call(method))
        return time.monotonic() - start

    async def main() -> tuple[float, float, float]:
        await limiter.bans.ban(top.DETAIL_METHOD, 0.3, app_wide=False)
        other = await timed(top.LISTING_METHOD)
        banned = await timed(top.DETAIL_METHOD)
        await limiter.bans.ban(top.DETAIL_METHOD, 0.2, app_wide=True)
        app_wide = await timed(top.LISTING_METHOD)
        return other, banned, app_wide

    other, banned, app_wide = run(main())
    assert other < 0.25  # a ban on one API does not stop another
    assert banned >= 0.3 - other - SLACK
    assert app_wide >= 0.2 - SLACK
    assert limiter.bans.waited_seconds == pytest.approx(0.5, abs=0.05)


def test_a_ban_that_starts_while_a_call_waits_for_its_slot_holds_it_too():
    limiter = mw(10)  # slots ~105 ms apart: the fifth call waits ~420 ms for its slot

    async def main() -> list[float]:
        start = time.monotonic()
        sent: list[float] = []

        async def one() -> None:
            await limiter.process_request(call())
            sent.append(time.monotonic() - start)

        calls = [asyncio.ensure_future(one()) for _ in range(5)]
        await asyncio.sleep(0.05)  # the first call is out, the others wait for their slots
        await limiter.bans.ban(top.DETAIL_METHOD, 0.6, app_wide=False)
        await asyncio.gather(*calls)
        return sorted(sent)

    sent = run(main())
    assert sent[0] < 0.05
    assert all(at >= 0.65 - SLACK for at in sent[1:]), sent  # none went out during the ban


def test_a_retry_waits_for_its_not_before_time():
    limiter = mw(0)
    request = call()

    async def main() -> float:
        start = time.monotonic()
        request.meta[META_KEY][NOT_BEFORE] = time.time() + 0.2  # set when the clock starts, not before
        await limiter.process_request(request)
        return time.monotonic() - start

    assert run(main()) >= 0.2 - SLACK
    assert NOT_BEFORE not in request.meta[META_KEY]  # used once: a later retry sets its own


class FakeScripts:
    """The WINDOW and DONE scripts as the middleware sees them (Redis mode without a Redis)."""

    def __init__(self, waits: tuple[int, ...] = ()) -> None:
        self.waits = list(waits)
        self.asked: list[list[object]] = []
        self.done: list[str] = []

    async def window(self, keys: list[str], args: list[object]) -> int:
        self.asked.append(args)
        return self.waits.pop(0) if self.waits else 0

    async def landed(self, keys: list[str], args: list[object]) -> int:
        self.done.append(str(args[0]))
        return 0


def shared(scripts: FakeScripts) -> RateLimitMiddleware:
    limiter = mw(50)
    limiter._window = scripts.window  # type: ignore[assignment]
    limiter._done = scripts.landed  # type: ignore[assignment]
    return limiter


def test_an_approved_call_counts_until_its_answer_is_in():
    scripts = FakeScripts()
    limiter = shared(scripts)
    request, other = call(), call()

    async def main() -> None:
        await limiter._shared_window(request, "app", top.DETAIL_METHOD)
        assert scripts.done == []  # in flight: it counts as leaving now, whenever it really leaves
        limiter.process_response(request, TextResponse(URL, body=b"{}"))
        limiter.process_response(other, TextResponse(URL, body=b"{}"))  # never approved here
        limiter.process_response(request, TextResponse(URL, body=b"{}"))  # reported once
        await asyncio.gather(*limiter._reports)  # reported in the background: no response waits

    run(main())
    cap, member, in_flight_ms = scripts.asked[0]
    assert cap == 47 and scripts.done == [member]
    assert in_flight_ms == (180 + ratelimit.IN_FLIGHT_MARGIN) * 1000  # DOWNLOAD_TIMEOUT + margin


def test_a_failed_call_also_reports_back():
    scripts = FakeScripts()
    limiter = shared(scripts)
    request = call()

    async def main() -> None:
        await limiter._shared_window(request, "app", top.DETAIL_METHOD)
        limiter.process_exception(request, TimeoutError())
        await asyncio.gather(*limiter._reports)

    run(main())
    assert scripts.done == [scripts.asked[0][1]]


def test_a_full_window_is_waited_for():
    scripts = FakeScripts(waits=(40, 0))
    limiter = shared(scripts)
    start = time.monotonic()
    run(limiter._shared_window(call(), "app", top.DETAIL_METHOD))
    assert time.monotonic() - start >= 0.04 - SLACK
    assert len(scripts.asked) == 2 and scripts.asked[0][1] == scripts.asked[1][1]


def test_the_window_counts_calls_in_flight_and_for_1_s_after_their_answer(redis_url):
    client = redis.Redis.from_url(redis_url)
    window_script, done = client.register_script(lua.WINDOW), client.register_script(lua.DONE)
    key, bans = "t:window", ["t:ban:api", "t:ban:*"]

    def window(keys: list[str], args: list[object]) -> int:
        return int(window_script(keys=[*keys, *bans], args=args))

    def now_ms() -> float:
        seconds, micros = client.time()
        return seconds * 1000 + micros / 1000

    try:
        assert window(keys=[key], args=[2, "a", 30_000]) == 0
        assert window(keys=[key], args=[2, "b", 30_000]) == 0
        # Both in flight: however late they leave, a third call may not go before 1 s after the
        # first answer.
        assert window(keys=[key], args=[2, "c", 30_000]) >= 1000
        done(keys=[key], args=["a", 0])
        assert 990 <= window(keys=[key], args=[2, "c", 30_000]) <= 1002  # a counts 1 s more
        assert client.zscore(key, "c") is None  # a call that must wait is not recorded
        done(keys=[key], args=["a", 600])  # reported late: a answered 600 ms ago
        assert 390 <= window(keys=[key], args=[2, "c", 30_000]) <= 402  # waits for a to leave
        done(keys=[key], args=["a", 1001])  # a answered just over 1 s ago (reported late)
        assert window(keys=[key], args=[2, "c", 30_000]) == 0
        assert client.zcard(key) == 2  # a left the window, c took its place
        done(keys=[key], args=["gone", 0])  # an answer for a call no longer counted adds nothing
        assert client.zscore(key, "gone") is None
        # A call never reported back (its worker died) stops counting after its in-flight limit.
        client.zadd(key, {"b": now_ms() - 1001, "c": now_ms() - 1001})
        assert window(keys=[key], args=[2, "d", 50]) == 0
        client.zadd(key, {"d": now_ms() + 50 - 1001})
        assert window(keys=[key], args=[2, "e", 50]) == 0
        # A ban on the API or on the app key is the last check: its remaining ms are the wait.
        client.zremrangebyrank(key, 0, -1)
        for ban in bans:
            client.set(ban, "1", px=700)
            assert 600 <= window(keys=[key], args=[2, "f", 30_000]) <= 700
            assert client.zscore(key, "f") is None  # a held call takes no place in the window
            client.delete(ban)
        assert window(keys=[key], args=[2, "f", 30_000]) == 0
    finally:
        client.delete(key, *bans)
        client.close()

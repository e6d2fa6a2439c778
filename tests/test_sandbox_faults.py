"""The sandbox's flow control and fault draws, in-process with explicit clocks and seeds.

test_sandbox.py drives them over HTTP; these pin the timing edges and check that what the
sandbox sends is read by the crawler's own decoder the way the error table intends."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shopcrawl.platforms import top
from shopcrawl.platforms.top import ErrorClass
from shopcrawl.sandbox.faults import FAULT_KINDS, FaultPlan, RateLimiter, ban_error, html_error

KEY = ("sandbox-app-key", top.LISTING_METHOD)
OTHER = ("sandbox-app-key", top.DETAIL_METHOD)


def decoded(error):
    """The sandbox's error as the crawler decodes it from the wire."""
    body = json.loads(json.dumps({"error_response": error.as_dict("rid-1")}))
    payload, api_error = top.unwrap(body, top.LISTING_METHOD)
    assert payload is None
    return api_error


def test_calls_up_to_the_limit_pass_and_the_next_starts_a_ban():
    limiter = RateLimiter(qps=2, ban_seconds=2.0)
    assert limiter.admit(KEY, 10.0) is None
    assert limiter.admit(KEY, 10.1) is None
    assert limiter.admit(KEY, 10.2) == (12.2, True)
    assert limiter.admit(KEY, 11.0) == (12.2, False)  # during the ban: refused, no new ban
    assert limiter.admit(KEY, 12.19) == (12.2, False)
    assert limiter.admit(KEY, 12.2) is None  # the ban ends exactly at its end time


def test_the_ban_is_per_key():
    limiter = RateLimiter(qps=1, ban_seconds=5.0)
    limiter.admit(KEY, 0.0)
    assert limiter.admit(KEY, 0.1) == (5.1, True)
    assert limiter.admit(OTHER, 0.2) is None


def test_the_window_slides_over_one_second():
    limiter = RateLimiter(qps=2, ban_seconds=2.0)
    assert limiter.admit(KEY, 0.0) is None
    assert limiter.admit(KEY, 0.5) is None
    assert limiter.admit(KEY, 1.0) is None  # the call at 0.0 has left the window
    assert limiter.admit(KEY, 1.4) == (3.4, True)  # 0.5 and 1.0 are still in it


def test_no_limit_when_qps_is_zero():
    limiter = RateLimiter(qps=0, ban_seconds=2.0)
    assert all(limiter.admit(KEY, n / 1000) is None for n in range(1000))


@pytest.mark.parametrize(("left", "seconds"), [(2.0, 2), (2.01, 3), (0.2, 1), (0.0, 1), (31062, 31062)])
def test_the_ban_message_counts_whole_seconds_up_and_at_least_one(left, seconds):
    error = decoded(ban_error(left, 100.0))
    assert error.sub_msg == f"This ban will last for {seconds} more seconds"
    assert error.ban_seconds == seconds


def test_the_crawler_waits_out_an_api_ban_and_stops_on_a_long_app_ban():
    api_ban = decoded(ban_error(3, 103.0))
    assert (api_ban.code, api_ban.app_wide) == ("7", False)
    assert top.classify(api_ban, max_ban_wait=600) is ErrorClass.BAN
    quota = decoded(ban_error(31062, 31162.0, app_wide=True))
    assert quota.sub_code == "accesscontrol.limited-by-app-access-count" and quota.app_wide
    assert top.classify(quota, max_ban_wait=600) is ErrorClass.FATAL


def test_no_faults_without_rates():
    plan = FaultPlan(1)
    assert {plan.draw() for _ in range(1000)} == {None}


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_rate_of_one_always_gives_that_fault(kind):
    plan = FaultPlan(1, **{f"rate_{kind}": 1.0})
    assert {plan.draw() for _ in range(200)} == {kind}


def test_rates_are_honoured_and_draws_repeat_for_a_seed():
    rates = {f"rate_{kind}": 0.05 for kind in FAULT_KINDS}
    first, second, other = FaultPlan(7, **rates), FaultPlan(7, **rates), FaultPlan(8, **rates)
    sequence = [first.draw() for _ in range(20000)]
    assert sequence == [second.draw() for _ in range(20000)]
    assert sequence != [other.draw() for _ in range(20000)]
    counts = Counter(sequence)
    for kind in FAULT_KINDS:
        assert 0.04 < counts[kind] / 20000 < 0.06, (kind, counts)
    assert 0.72 < counts[None] / 20000 < 0.78


def test_isp_faults_cycle_through_retryable_sub_codes():
    plan = FaultPlan(1, rate_isp=1.0)
    errors = [decoded(plan.isp_error()) for _ in range(8)]
    assert len({e.sub_code for e in errors}) == 4
    assert [e.sub_code for e in errors[:4]] == [e.sub_code for e in errors[4:]]
    for error in errors:
        assert (error.code, error.msg) == ("15", "Remote service error")
        assert top.classify(error, max_ban_wait=600) is ErrorClass.RETRY


def test_5xx_faults_alternate_between_502_and_503():
    plan = FaultPlan(3, rate_5xx=1.0)
    assert {plan.status_5xx() for _ in range(100)} == {502, 503}


def test_garbled_bodies_are_neither_utf8_nor_json():
    body = FaultPlan(1).garbage()
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    with pytest.raises(ValueError):
        json.loads(body)


@pytest.mark.parametrize(
    ("status", "title"),
    [(502, "502 Bad Gateway"), (503, "503 Service Temporarily Unavailable"), (504, "504 Gateway Time-out")],
)
def test_gateway_error_pages(status, title):
    page = html_error(status).decode("ascii")
    assert f"<title>{title}</title>" in page and "Tengine" in page

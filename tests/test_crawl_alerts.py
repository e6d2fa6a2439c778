"""End to end: two sandbox crawls (TOP, SQLite) with a mutate between, alerts POSTed to a real receiver on
127.0.0.1. Exactly the injected changes that match the rules arrive, once each; a re-run sends nothing;
a failing receiver gets them after retries or on the next run; an incomplete crawl sends nothing."""

from __future__ import annotations

import socket
from collections import Counter

from tests.conftest import crawl
from tests.webhook_receiver import webhook_receiver

RULES = {
    "SHOPCRAWL_ALERT_PRICE_DROP": "4",  # the sandbox lowers a price by 5% or more
    "SHOPCRAWL_ALERT_ON": "new,delisted,sold_out",  # rises and restocks: off
}
MUTATION = {"seed": 5, "price_up": 3, "price_down": 3, "sold_out": 2, "new": 4, "delist": 2}


def alert_env(url: str) -> dict[str, str]:
    return {"SHOPCRAWL_ALERT_WEBHOOK": url, **RULES}


def received(receiver) -> list[tuple]:
    """(kind, num_iid, sku_id) of every change delivered (answered 2xx), repeats kept."""
    return [
        (c["kind"], c["num_iid"], c.get("sku_id")) for body in receiver.delivered() for c in body["changes"]
    ]


def expected(changed: dict[str, list[int]]) -> set[tuple[str, int]]:
    kinds = {"price_down": "price_drop", "sold_out": "sold_out", "new": "new", "delist": "delisted"}
    return {(kind, num_iid) for key, kind in kinds.items() for num_iid in changed[key]}


def assert_clean(result, receiver_url: str) -> None:
    assert result.returncode == 0, result.stderr
    token = receiver_url.partition("access_token=")[2]
    assert token and token not in result.log and token not in result.stderr
    assert "Warning" not in result.log  # e.g. a signal handler Scrapy deprecates


def test_the_injected_changes_arrive_once_and_a_rerun_sends_nothing(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "300", "--seed", "7")
    with webhook_receiver() as receiver:
        env = alert_env(receiver.url)
        first = crawl(sandbox.url, tmp_path, env=env)
        assert_clean(first, receiver.url)
        assert receiver.posts == []  # one complete run: nothing to compare yet
        changed = sandbox.mutate(**MUTATION)
        second = crawl(sandbox.url, tmp_path, env=env)
        assert_clean(second, receiver.url)
        got = received(receiver)
        assert len(got) == len(set(got)), Counter(got).most_common(3)  # once each
        assert {(kind, num_iid) for kind, num_iid, _ in got} == expected(changed)
        assert all(status == 200 for status in receiver.answered)
        assert f"'shopcrawl/alerts/delivered': {len(got)}" in second.log
        posts = len(receiver.posts)

        third = crawl(sandbox.url, tmp_path, env=env)  # the same command again
        assert_clean(third, receiver.url)
        assert len(receiver.posts) == posts
        assert "'shopcrawl/alerts/queued': 0" in third.log

        # An incomplete crawl (stopped after 4 responses, one request at a time) sends nothing, though the
        # shop changed.
        more = sandbox.mutate(seed=9, new=2, delist=1)
        stop_early = {"CLOSESPIDER_PAGECOUNT": 4, "CONCURRENT_REQUESTS": 1}
        # A full crawl: an incremental one of this shop needs no more than 4 responses and would end.
        cut = crawl(sandbox.url, tmp_path, env=env, settings=stop_early, extra_args=("-a", "mode=full"))
        assert cut.query("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1") == [("incomplete",)]
        assert len(receiver.posts) == posts and "no alerts" in cut.log

        # The next complete crawl alerts them, against the last complete run.
        last = crawl(sandbox.url, tmp_path, env=env)
        assert_clean(last, receiver.url)
        news = {(kind, num_iid) for kind, num_iid, _ in received(receiver)[len(got) :]}
        assert news == {("new", n) for n in more["new"]} | {("delisted", n) for n in more["delist"]}
    stored = first.query("SELECT status, COUNT(*) FROM alerts GROUP BY status")
    assert stored == [("delivered", len(got) + len(news))]
    for path in tmp_path.glob("shop.db*"):  # the webhook's token is in no store file
        assert b"tok-SECRET-123" not in path.read_bytes()


def test_a_500_then_200_is_delivered_by_the_retry_within_the_run(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "100", "--seed", "3")
    with webhook_receiver(statuses=[500]) as receiver:
        env = alert_env(receiver.url)
        assert_clean(crawl(sandbox.url, tmp_path, env=env), receiver.url)
        changed = sandbox.mutate(seed=2, price_down=2, new=1)
        result = crawl(sandbox.url, tmp_path, env=env)
        assert_clean(result, receiver.url)
    assert receiver.answered == [500, 200]
    assert {(kind, n) for kind, n, _ in received(receiver)} == expected(
        changed | {"sold_out": [], "delist": []}
    )
    assert "refused" in result.log and "HTTP 500" in result.log


def test_a_receiver_down_for_a_whole_run_gets_the_alerts_on_the_next_run(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "100", "--seed", "4")
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}/hook?access_token=tok-DOWN-1"
        assert_clean(crawl(sandbox.url, tmp_path, env=alert_env(down)), down)
        changed = sandbox.mutate(seed=2, sold_out=1, new=2, delist=1)
        failed = crawl(sandbox.url, tmp_path, env=alert_env(down))
    assert_clean(failed, down)  # the crawl itself is fine
    assert failed.query("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1") == [("complete",)]
    pending = failed.query("SELECT status, attempts, last_error FROM alerts")
    assert len(pending) == 4 and {row[:2] for row in pending} == {("pending", 3)}
    assert all("Connection refused" in row[2] for row in pending)
    with webhook_receiver() as receiver:
        result = crawl(sandbox.url, tmp_path, env=alert_env(receiver.url))
        assert_clean(result, receiver.url)
    assert {(kind, n) for kind, n, _ in received(receiver)} == expected(changed | {"price_down": []})
    assert result.query("SELECT DISTINCT status FROM alerts") == [("delivered",)]

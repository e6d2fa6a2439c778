"""What `shopcrawl status` reads from a real Redis: each run's state and counts, and calls/s."""

from __future__ import annotations

import time

import pytest
import redis
from scrapy.utils.test import get_crawler

from shopcrawl.distributed import keys as K
from shopcrawl.distributed.run import RunCoordinator
from shopcrawl.distributed.scheduler import LeasedQueue
from shopcrawl.distributed.status import RunStatus, calls_per_second, run_statuses
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.spiders.shop import ShopSpider


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def busy_run(server, seller="s1", run_id="run-a", started="2026-01-01T00:00:00+00:00"):
    """A run with 5 items listed of 8 declared, 3 stored, 2 requests queued and 1 leased."""
    workers = [RunCoordinator(server, seller) for _ in range(2)]
    for worker in workers:
        worker.join(run_id, started)
    first = workers[0]
    first.set_declared_total(8)
    first.claim("None|1", range(1, 6))
    crawler = get_crawler(ShopSpider, {**SANDBOX_CREDENTIALS, "SHOPCRAWL_API_URL": "http://127.0.0.1:1/r"})
    spider = ShopSpider.from_crawler(crawler, seller_id=seller)
    queue = LeasedQueue(server, spider, first)
    for n in (1, 2, 3):
        queue.push(spider._detail({str(n): {}}), fingerprint=str(n))
    queue.pop()
    first.push_counters({"shopcrawl/api/calls": 40}, accounted=[1, 2])
    workers[1].push_counters({"shopcrawl/api/calls": 2}, accounted=[2, 3])
    return workers


def test_a_running_run_with_its_counts(server):
    busy_run(server)
    assert run_statuses(server) == [
        RunStatus(
            seller_id="s1",
            run_id="run-a",
            state="running",
            started_at="2026-01-01T00:00:00+00:00",
            declared_total=8,
            listed=5,
            stored=3,
            queued=2,
            leased=1,
            workers_alive=2,
            api_calls=42,
        )
    ]


def test_a_run_without_live_workers_is_abandoned_and_a_closed_one_closed(server):
    first, second = busy_run(server)
    server.delete(first.keys.heartbeat(first.worker))
    (status,) = run_statuses(server)
    assert (status.state, status.workers_alive, status.leased) == ("running", 1, 1)
    server.delete(second.keys.heartbeat(second.worker))
    assert run_statuses(server)[0].state == "abandoned"
    first.try_close()
    assert run_statuses(server)[0].state == "closed"


def test_runs_are_listed_newest_first_and_filtered_by_seller(server):
    busy_run(server, "s1", "old", "2026-01-01T00:00:00+00:00")
    busy_run(server, "s2", "new", "2026-01-02T00:00:00+00:00")
    empty = RunCoordinator(server, "s3")
    empty.join("none", "2026-01-03T00:00:00+00:00")
    statuses = run_statuses(server)
    assert [(s.seller_id, s.run_id) for s in statuses] == [("s3", "none"), ("s2", "new"), ("s1", "old")]
    assert statuses[0].as_dict()["declared_total"] is None and statuses[0].listed == 0
    assert [s.run_id for s in run_statuses(server, "s1")] == ["old"]
    assert run_statuses(server, "nobody") == []


def test_calls_per_second_counts_the_last_ten_whole_seconds_of_every_app_key(server):
    now = int(time.time())
    for app_key, second, calls in [
        ("app-1", now - 2, 30),
        ("app-1", now - 8, 40),
        ("app-2", now - 5, 30),
        ("app-1", now - 30, 999),  # too old
    ]:
        server.set(f"{K.calls_prefix(app_key)}{second}", calls)
    assert calls_per_second(server) == 10.0
    assert calls_per_second(server, window=4) == 30 / 4
    assert "app-1" not in K.calls_prefix("app-1")  # named by a hash, never the key itself


def test_no_runs_and_no_calls(server):
    assert run_statuses(server) == [] and calls_per_second(server) == 0.0


def test_sellers_with_braces_colons_or_glob_characters_are_shown_and_filtered_exactly(server):
    for n, seller in enumerate(["shop{1}:a", "shop%7B1%7D:a", "x*", "xy", "a:b"]):
        RunCoordinator(server, seller).join(f"{seller}-run:{n}", f"2026-01-0{n + 1}T00:00:00+00:00")
    assert [(s.seller_id, s.run_id) for s in run_statuses(server)] == [
        ("a:b", "a:b-run:4"),
        ("xy", "xy-run:3"),
        ("x*", "x*-run:2"),
        ("shop%7B1%7D:a", "shop%7B1%7D:a-run:1"),
        ("shop{1}:a", "shop{1}:a-run:0"),
    ]
    for seller in ["shop{1}:a", "x*", "a:b", "shop%7B1%7D:a"]:
        assert [s.seller_id for s in run_statuses(server, seller)] == [seller]
    assert run_statuses(server, "a") == [] and run_statuses(server, "shop{1}") == []

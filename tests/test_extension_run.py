"""RunLifecycle with a real SQLite store: the run record at the start (owner, heartbeat, dead runs of
the seller abandoned) and at the end (status from the store's tally, summary, stats, run_finished).

RunLifecycle and StorePipeline do their store I/O with ``deferToThread`` and time with
``LoopingCall``, so these tests drive the asyncio reactor that ``scrapy crawl`` installs, the way
twisted.trial does (run it, ``crash`` it when the test's coroutine is done). ``run_in_reactor`` is
shared with the other test modules that need it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scrapy import signals
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.reactor import install_reactor, is_asyncio_reactor_installed, is_reactor_installed
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from shopcrawl import signals as shopcrawl_signals
from shopcrawl.downloadermiddlewares.ratelimit import BanBook
from shopcrawl.extensions.run import RunLifecycle, worker_counters
from shopcrawl.items import Reject
from shopcrawl.runs import FATAL_STAT, STATUS_STAT, SUMMARY_STAT, this_process
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.spiders.shop import ShopSpider
from shopcrawl.stores import SqliteStore
from shopcrawl.stores.base import RunRecord
from tests.test_store_sqlite import make_item

ASYNCIO_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
_loop: asyncio.AbstractEventLoop | None = None
if not is_reactor_installed():
    _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)  # the reactor's loop, closed at the end of the session
    install_reactor(ASYNCIO_REACTOR)
assert is_asyncio_reactor_installed(), "these tests need the asyncio reactor, as `scrapy crawl` uses"
_reactor_stopped: list[bool] = []


def run_in_reactor(make: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Run the coroutine ``make()`` in the reactor until it is done; return its result or raise."""
    from twisted.internet import reactor

    assert not _reactor_stopped, "the reactor was shut down at the end of the session"
    outcome: list[Any] = []

    def start() -> None:
        d = deferred_from_coro(make())
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.crash())

    reactor.callLater(0, start)
    guard = reactor.callLater(timeout, reactor.crash)
    reactor.run(installSignalHandlers=False)
    if guard.active():
        guard.cancel()
    assert outcome, f"not done within {timeout} s"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


@pytest.fixture(scope="session", autouse=True)
def reactor_shutdown():
    """Stop the reactor once, at the end of the session, so its thread pool lets the process exit."""
    yield
    if not _reactor_stopped:
        from twisted.internet import reactor

        _reactor_stopped.append(True)
        reactor.callWhenRunning(reactor.stop)
        reactor.run(installSignalHandlers=False)
        if _loop is not None:
            _loop.close()


def make_crawler(tmp_path, run_id="run-new", seller="s1", **settings):
    db = tmp_path / "shop.db"
    crawler = get_crawler(
        ShopSpider,
        {**SANDBOX_CREDENTIALS, "SHOPCRAWL_STORE": f"sqlite:///{db}", **settings},
    )
    crawler.spider = ShopSpider.from_crawler(crawler, seller_id=seller, run_id=run_id)
    return crawler


def read_store(tmp_path) -> SqliteStore:
    store = SqliteStore(tmp_path / "shop.db")
    store.open()
    return store


def dead_owner() -> str:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return f"{socket.gethostname()}:{int(child.stdout)}"


def seed_runs(tmp_path, *runs: RunRecord) -> None:
    store = read_store(tmp_path)
    for run in runs:
        store.start_run(run)
    store.close()


def test_open_run_starts_the_record_and_abandons_the_sellers_dead_runs(tmp_path, caplog):
    now = datetime.now(UTC)
    gone = dead_owner()
    seed_runs(
        tmp_path,
        RunRecord("dead", "taobao", "s1", now - timedelta(minutes=1), heartbeat_at=now, owner=gone),
        RunRecord("stale", "taobao", "s1", now - timedelta(hours=1), heartbeat_at=now - timedelta(hours=1)),
        RunRecord("alive", "taobao", "s1", now, heartbeat_at=now, owner="other-host:1"),
        RunRecord("other-seller", "taobao", "s2", now, heartbeat_at=now, owner=gone),
    )
    crawler = make_crawler(tmp_path)
    lifecycle = RunLifecycle.from_crawler(crawler)
    run_in_reactor(lifecycle.open_run)
    try:
        store = read_store(tmp_path)
        new = store.get_run("run-new")
        assert (new.status, new.owner, new.seller_id) == ("running", this_process(), "s1")
        assert now <= new.heartbeat_at <= datetime.now(UTC)
        assert new.started_at == crawler.spider.started_at
        dead, stale = store.get_run("dead"), store.get_run("stale")
        assert (dead.status, dead.reason) == (
            "abandoned",
            f"abandoned: its crawl process {gone} ended without closing the run; found by run run-new",
        )
        assert stale.status == "abandoned" and stale.reason.startswith("abandoned: no heartbeat since")
        assert store.get_run("alive").status == "running"
        assert store.get_run("other-seller").status == "running"
        store.close()
        assert f"Marked run dead of seller s1 abandoned: its crawl process {gone}" in caplog.text
    finally:
        run_in_reactor(lambda: lifecycle.spider_closed("finished"))


def send(crawler, signal, **kwargs):
    run_in_reactor(lambda: crawler.signals.send_catch_log_async(signal, spider=crawler.spider, **kwargs))


def finish(crawler, lifecycle, reason="finished"):
    """Close the spider the way the engine does: the spider_closed signal."""
    send(crawler, signals.spider_closed, reason=reason)
    return lifecycle.record


def open_with_items(tmp_path, declared, stored, rejects=(), **settings):
    crawler = make_crawler(tmp_path, **settings)
    lifecycle = RunLifecycle.from_crawler(crawler)
    send(crawler, signals.spider_opened)
    store = run_in_reactor(lifecycle.open_run)
    spider = crawler.spider
    spider.ledger.set_declared_total(declared)
    spider.ledger.claim("None|1", range(1, declared + 1))
    store.write_items([make_item(n, run_id="run-new") for n in stored])
    if rejects:
        store.write_rejects([Reject("taobao", "s1", why, {}, n, "run-new") for n, why in rejects])
    return crawler, lifecycle


def test_a_run_with_every_item_accounted_for_closes_complete_with_its_summary(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="shopcrawl.extensions.run")
    crawler, lifecycle = open_with_items(tmp_path, 4, [1, 2, 3], [(4, "detail/missing: gone")])
    stats = crawler.stats
    stats.inc_value("shopcrawl/api/calls/taobao.items.onsale.get", 1)
    stats.inc_value("shopcrawl/api/calls/taobao.items.seller.list.get", 2)
    stats.set_value("retry/count", 1)
    finished = []

    def on_finished(run):
        finished.append(run)

    crawler.signals.connect(on_finished, signal=shopcrawl_signals.run_finished)
    record = finish(crawler, lifecycle)
    stored = read_store(tmp_path).get_run("run-new")
    assert (stored.status, stored.coverage, stored.reason) == ("complete", 1.0, "")
    assert (stored.items_stored, stored.items_missing, stored.items_listed) == (3, 1, 4)
    assert stored.api_calls == {"taobao.items.onsale.get": 1, "taobao.items.seller.list.get": 2}
    assert stored.retries == 1 and stored.finished_at is not None
    assert stored.owner == this_process()  # kept from the start of the run
    assert finished == [record] and record.run_id == "run-new"
    assert stats.get_value(STATUS_STAT) == "complete"
    assert stats.get_value("shopcrawl/coverage") == 100.0
    assert stats.get_value("shopcrawl/run_id") == "run-new"
    summary = stats.get_value(SUMMARY_STAT)
    assert summary.startswith("Run run-new COMPLETE: 4 / 4 items accounted for (100%); stored 3, rejected 0")
    assert "API calls 3 (taobao.items.onsale.get 1, taobao.items.seller.list.get 2); retries 1" in summary
    assert summary in caplog.text


def test_items_not_accounted_for_make_the_run_incomplete(tmp_path):
    crawler, lifecycle = open_with_items(tmp_path, 5, [1, 2], [(3, "failed/detail/-1: gave up")])
    record = finish(crawler, lifecycle)
    assert (record.status, record.coverage, record.items_failed) == ("incomplete", 0.4, 1)
    assert record.reason == "3 declared items not accounted for (1 gave up after retries)"
    assert read_store(tmp_path).get_run("run-new").status == "incomplete"
    assert crawler.stats.get_value("shopcrawl/coverage") == 40.0
    assert crawler.stats.get_value(SUMMARY_STAT).startswith("Run run-new INCOMPLETE: 2 / 5 items")


def test_a_crawl_stopped_by_a_signal_is_interrupted(tmp_path):
    crawler, lifecycle = open_with_items(tmp_path, 4, [1])
    record = finish(crawler, lifecycle, reason="shutdown")
    assert (record.status, record.reason) == (
        "interrupted",
        "stopped by a signal; 3 declared items not accounted for",
    )
    assert read_store(tmp_path).get_run("run-new").status == "interrupted"
    assert crawler.stats.get_value(STATUS_STAT) == "interrupted"


def test_a_fatal_error_fails_the_run_and_the_ban_wait_is_recorded(tmp_path):
    crawler, lifecycle = open_with_items(tmp_path, 1, [1])
    crawler.stats.set_value(FATAL_STAT, "TOP error 27 (Invalid Session) -> renew the session")
    run_in_reactor(lambda: BanBook.for_crawler(crawler).ban("taobao.items.onsale.get", 2, app_wide=False))
    record = finish(crawler, lifecycle)
    assert (record.status, record.reason) == ("failed", "TOP error 27 (Invalid Session) -> renew the session")
    assert record.ban_wait_seconds == pytest.approx(2.0, abs=0.01)
    assert crawler.stats.get_value("shopcrawl/ban/wait_seconds") == pytest.approx(2.0, abs=0.01)
    assert read_store(tmp_path).get_run("run-new").status == "failed"


def test_the_store_is_closed_after_the_final_record(tmp_path):
    crawler, lifecycle = open_with_items(tmp_path, 1, [1])
    finish(crawler, lifecycle)
    with pytest.raises(Exception, match="is not open"):
        lifecycle.store.tally("run-new")


def test_a_spider_closed_before_its_run_opened_writes_nothing(tmp_path):
    crawler = make_crawler(tmp_path)
    lifecycle = RunLifecycle.from_crawler(crawler)
    send(crawler, signals.spider_opened)
    assert finish(crawler, lifecycle) is None
    assert crawler.stats.get_value(STATUS_STAT) is None
    assert not (tmp_path / "shop.db").exists()


def test_worker_counters_are_the_additive_stats_and_the_ban_wait(tmp_path):
    crawler = make_crawler(tmp_path)
    stats = crawler.stats
    for key, value in {
        "shopcrawl/api/calls": 7,
        "shopcrawl/api/error/7": 1,
        "shopcrawl/store/items": 5,
        "shopcrawl/ban/count": 1,
        "retry/count": 2,
        "shopcrawl/listing/bad_rows": 1,
        "shopcrawl/listing/declared_total": 100,  # the same for every worker: not summed
        "shopcrawl/coverage": 50.0,
        "shopcrawl/status": "running",
        "shopcrawl/item/flag": True,
    }.items():
        stats.set_value(key, value)
    run_in_reactor(lambda: BanBook.for_crawler(crawler).ban("m", 1.5, app_wide=True))
    counters = worker_counters(crawler)
    assert counters.pop("shopcrawl/ban/wait_seconds") == pytest.approx(1.5, abs=0.01)
    assert counters == {
        "shopcrawl/api/calls": 7,
        "shopcrawl/api/error/7": 1,
        "shopcrawl/store/items": 5,
        "shopcrawl/ban/count": 1,
        "retry/count": 2,
        "shopcrawl/listing/bad_rows": 1,
    }

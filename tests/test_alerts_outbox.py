"""The alerts outbox on SQLite and a MongoDB-wire server (FerretDB), and the alert pass over it with a real
local webhook receiver: queued once, delivered once, retried with backoff, left pending, sent next time."""

from __future__ import annotations

import dataclasses
import logging
import time
import urllib.parse
from datetime import timedelta

import pytest
from scrapy.settings import Settings

from shopcrawl.config import AlertConfig
from shopcrawl.monitor.alerts import TRIES, alert_pass
from shopcrawl.monitor.webhooks import dingtalk_sign
from shopcrawl.stores import SqliteStore
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.mongo import MongoStore
from shopcrawl.stores.outbox import AlertRecord
from tests.test_store_sqlite import T0, make_item
from tests.webhook_receiver import webhook_receiver


@pytest.fixture(params=["sqlite", "mongodb"])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "shop.db")
    else:
        store = MongoStore(request.getfixturevalue("mongo_uri"))
    store.open()
    yield store
    store.close()


def record(n: int, run_id: str = "run-2", content: str | None = None) -> AlertRecord:
    return AlertRecord(
        key=f"taobao|s1|{run_id}|new|{n}||",
        content_key=content or f"run-1|taobao|s1|new|{n}||||",
        platform="taobao",
        seller_id="s1",
        run_id=run_id,
        change={"kind": "new", "num_iid": n, "title": "$x.y <b>", "run_id": run_id},
        created_at=T0 + timedelta(seconds=n),
    )


def test_queue_skips_known_keys_and_known_contents(store):
    assert store.queue_alerts([record(1), record(2)]) == [record(1), record(2)]
    again = [record(1), record(2, run_id="run-3"), record(3)]  # same key; same content from a re-run; new
    assert store.queue_alerts(again) == [record(3)]
    assert [r.key for r in store.pending_alerts("taobao", "s1")] == [record(n).key for n in (1, 2, 3)]
    assert store.pending_alerts("taobao", "other") == [] and store.queue_alerts([]) == []
    assert store.alerts_for("taobao", "s1")[0] == record(1)  # a round trip, the change's strings as they were


def test_marking_counts_attempts_and_delivers(store):
    store.queue_alerts([record(1), record(2)])
    store.mark_alerts([record(1).key], T0, error="HTTP 500")
    store.mark_alerts([record(1).key], T0, error="HTTP 502")
    (first, second) = store.pending_alerts("taobao", "s1")
    assert (first.status, first.attempts, first.last_error) == ("pending", 2, "HTTP 502")
    assert (second.attempts, second.last_error) == (0, "")
    store.mark_alerts([record(1).key, record(2).key], T0 + timedelta(minutes=1))
    assert store.pending_alerts("taobao", "s1") == []
    done = store.alerts_for("taobao", "s1")
    assert [(r.status, r.attempts, r.last_error) for r in done] == [
        ("delivered", 3, ""),
        ("delivered", 1, ""),
    ]
    assert done[0].delivered_at == T0 + timedelta(minutes=1)
    # delivered stays delivered: the same change found again is not queued
    assert store.queue_alerts([dataclasses.replace(record(1), key="other-key")]) == []


# --- the pass over a store with two complete runs -------------------------------------------------------


def write_run(store, run_id: str, items, minute: int) -> RunRecord:
    run = RunRecord(run_id, "taobao", "s1", T0 + timedelta(minutes=minute), status="running")
    store.start_run(run)
    store.write_items([dataclasses.replace(item, run_id=run_id) for item in items])
    done = dataclasses.replace(run, status="complete", finished_at=run.started_at, coverage=1.0)
    store.finish_run(done)
    return done


def two_runs(store) -> RunRecord:
    """Run 1: items 1-4. Run 2: item 1 down 20%, item 2 up 5%, item 3 delisted, item 5 new."""
    items = {n: make_item(n, skus=0) for n in range(1, 5)}
    write_run(store, "run-1", items.values(), 0)
    items[1] = dataclasses.replace(items[1], price="20.64", price_fen=2064)
    items[2] = dataclasses.replace(items[2], price="27.09", price_fen=2709)
    del items[3]
    items[5] = make_item(5, skus=0, seller_id="s1")
    return write_run(store, "run-2", items.values(), 10)


RULES = AlertConfig.from_settings(
    Settings(
        {
            "SHOPCRAWL_ALERT_WEBHOOK": "http://x",
            "SHOPCRAWL_ALERT_PRICE_DROP": "10",
            "SHOPCRAWL_ALERT_ON": "new",
        }
    )
)


def sent_changes(receiver) -> list[tuple[str, int]]:
    return [(c["kind"], c["num_iid"]) for body in receiver.delivered() for c in body["changes"]]


def test_the_pass_sends_the_matching_changes_once(store):
    run = two_runs(store)
    with webhook_receiver() as receiver:
        config = dataclasses.replace(RULES, webhook=receiver.url)
        first = alert_pass(store, config, run, sleep=pytest.fail)
        again = alert_pass(store, config, run, sleep=pytest.fail)  # the same run's pass again
    assert sent_changes(receiver) == [("new", 5), ("price_drop", 1)]  # no rise (off), no delisting (off)
    assert (first.queued, first.delivered, first.pending) == (2, 2, 0)
    assert (again.queued, again.delivered, again.pending) == (0, 0, 0)
    body = receiver.bodies()[0]
    assert (body["seller"], body["platform"], body["run_id"]) == ("s1", "taobao", "run-2")
    drop = body["changes"][1]
    assert (drop["old"], drop["new"], drop["pct"]) == ("25.80", "20.64", -20.0)


def test_an_incomplete_run_sends_nothing(store):
    run = dataclasses.replace(two_runs(store), status="incomplete")
    with webhook_receiver() as receiver:
        result = alert_pass(store, dataclasses.replace(RULES, webhook=receiver.url), run)
    assert receiver.posts == [] and result.queued == 0


def test_a_failing_webhook_is_retried_with_backoff_then_left_pending(store, caplog):
    run = two_runs(store)
    waits: list[float] = []
    caplog.set_level(logging.INFO)
    with webhook_receiver(statuses=[500], default=503) as receiver:
        config = dataclasses.replace(RULES, webhook=receiver.url)
        result = alert_pass(store, config, run, sleep=waits.append)
        assert len(receiver.posts) == TRIES and receiver.delivered() == []
        pending = store.pending_alerts("taobao", "s1")
        assert [(r.attempts, r.last_error) for r in pending] == [(TRIES, "HTTP 503")] * 2
        assert (result.queued, result.delivered, result.pending) == (2, 0, 2)
        assert waits == [1.0, 3.0] and sum(waits) <= 10
        receiver.default = 200
        later = alert_pass(store, config, run, sleep=pytest.fail)  # the next pass sends them
    assert sent_changes(receiver) == [("new", 5), ("price_drop", 1)]
    assert (later.queued, later.delivered, later.pending) == (0, 2, 0)
    assert store.pending_alerts("taobao", "s1") == []
    assert "tok-SECRET" not in caplog.text and "refused 2 alerts (try 1/3): HTTP 500" in caplog.text


def test_a_500_then_200_is_delivered_by_the_retry(store):
    run = two_runs(store)
    waits: list[float] = []
    with webhook_receiver(statuses=[500]) as receiver:
        result = alert_pass(store, dataclasses.replace(RULES, webhook=receiver.url), run, sleep=waits.append)
    assert receiver.answered == [500, 200] and waits == [1.0]
    assert sent_changes(receiver) == [("new", 5), ("price_drop", 1)] and result.delivered == 2
    (first, _) = store.alerts_for("taobao", "s1")
    assert (first.status, first.attempts) == ("delivered", 2)


def test_dingtalk_bodies_go_to_a_signed_url(store):
    run = two_runs(store)
    with webhook_receiver(robot=True) as receiver:
        config = dataclasses.replace(RULES, webhook=receiver.url, format="dingtalk", secret="SECtest")
        result = alert_pass(store, config, run, sleep=pytest.fail)
    ((path, body),) = receiver.posts
    assert path.startswith("/hook?access_token=tok-SECRET-123&timestamp=") and "&sign=" in path
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    timestamp = int(query["timestamp"][0])
    assert query["sign"] == [dingtalk_sign("SECtest", timestamp)]
    assert abs(timestamp / 1000 - time.time()) < 60
    assert body["msgtype"] == "markdown" and "连衣裙 5" in body["markdown"]["text"]
    assert result.delivered == 2 and "2 changes" in body["markdown"]["title"]

"""The fleet's queue and schedule against a real Redis: one pending job per shop, reliable taking, dead
workers' jobs put back, retries promoted on time, exactly one queueing per interval however many
schedulers tick, and schedule files checked with messages that name the shop and the field."""

from __future__ import annotations

import json
import time

import pytest
import redis

from shopcrawl.config import ConfigError
from shopcrawl.fleet.jobs import Job, JobQueue, heartbeat_key, key, taken_key
from shopcrawl.fleet.schedule import ScheduledShop, Scheduler, load
from shopcrawl.fleet.status import fleet_status

T0 = 1_800_000_000.0


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)  # emptied by the fixture
    yield client
    client.close()


def test_a_shop_has_one_pending_job_at_a_time(server):
    queue = JobQueue(server)
    assert queue.enqueue(Job("top", "taobao", "a"))
    assert not queue.enqueue(Job("top", "taobao", "a", "full"))  # queued already
    assert queue.enqueue(Job("1688", "1688", "a"))  # another API: another shop
    job = queue.take(1)
    assert (job.api, job.seller) == ("top", "a")
    assert not queue.enqueue(Job("top", "taobao", "a"))  # running
    queue.finish(job, "done", last={"status": "complete"})
    assert queue.enqueue(Job("top", "taobao", "a"))
    assert queue.last("top|taobao|a") == {"status": "complete"}


def test_take_waits_for_a_job_and_moves_it_to_the_workers_list(server):
    queue = JobQueue(server, "w1")
    started = time.monotonic()
    assert queue.take(1) is None and time.monotonic() - started >= 0.9
    queue.enqueue(Job("top", "taobao", "a"))
    assert queue.take(1).seller == "a"
    assert server.lrange(taken_key("w1"), 0, -1) == [b"top|taobao|a"] and server.llen(key("queue")) == 0


def test_a_dead_workers_jobs_go_back_to_the_front_of_the_queue(server):
    dead, alive = JobQueue(server, "dead"), JobQueue(server, "alive")
    for seller in ("a", "b"):
        dead.enqueue(Job("top", "taobao", seller))
    dead.beat()
    taken = dead.take(1)
    alive.beat()
    assert alive.housekeeping() == (0, 0)  # its heartbeat is still alive
    server.delete(heartbeat_key("dead"))  # SIGKILLed: the heartbeat expires
    assert alive.housekeeping() == (0, 1)
    assert server.lrange(key("queue"), 0, -1) == [taken.shop.encode(), b"top|taobao|b"]
    assert not server.sismember(key("workers"), "dead") and server.llen(taken_key("dead")) == 0


def test_a_failed_job_waits_for_its_retry_then_is_promoted(server):
    queue = JobQueue(server)
    queue.enqueue(Job("top", "taobao", "a"))
    job = queue.take(1)
    retry = Job(**{**job.__dict__, "attempt": 1, "last_error": "boom"})
    queue.finish(retry, "retry", at=time.time() + 3600)
    assert queue.housekeeping() == (0, 0) and server.llen(key("queue")) == 0
    assert not queue.enqueue(Job("top", "taobao", "a"))  # still pending
    server.zadd(key("delayed"), {job.shop: time.time() - 1})
    assert queue.housekeeping() == (1, 0)
    again = queue.take(1)
    assert (again.attempt, again.last_error) == (1, "boom")
    queue.finish(again, "park", parked={"reason": "boom", "attempts": 4})
    assert json.loads(server.hget(key("parked"), job.shop)) == {"reason": "boom", "attempts": 4}
    status = fleet_status(server)
    assert [s["state"] for s in status["shops"]] == ["parked"] and status["parked"][0]["reason"] == "boom"


def test_each_interval_queues_a_shop_once_however_many_schedulers_tick(server):
    shops = [ScheduledShop("top", "taobao", "a", 60), ScheduledShop("top", "taobao", "b", 600)]
    one, two = Scheduler(server), Scheduler(server)
    one.sync(shops, now=T0)
    two.sync(shops, now=T0 + 1)  # a second scheduler with the same file changes nothing
    assert sorted(one.tick(now=T0) + two.tick(now=T0)) == ["top|taobao|a", "top|taobao|b"]
    assert one.tick(now=T0 + 30) == [] and two.tick(now=T0 + 59) == []
    queue = JobQueue(server)
    for _ in range(2):
        queue.finish(queue.take(1), "done")
    assert one.tick(now=T0 + 60) + two.tick(now=T0 + 60) == ["top|taobao|a"]
    # A shop whose job is still pending is not queued again; its interval passes.
    assert one.tick(now=T0 + 120) == []
    # After a long stop the schedule queues once and moves on by whole intervals past now.
    queue.finish(queue.take(1), "done")
    assert one.tick(now=T0 + 1000) == ["top|taobao|a", "top|taobao|b"]
    assert server.zscore(key("due"), "top|taobao|a") == T0 + 1020
    job = Job.from_json(server.hget(key("jobs"), "top|taobao|a"))
    assert (job.due_at, job.mode, job.attempt) == (T0 + 180, "incremental", 0)  # the slot it fills


def test_a_parked_shop_is_not_queued_and_a_removed_one_leaves_the_schedule(server):
    scheduler = Scheduler(server)
    scheduler.sync([ScheduledShop("top", "taobao", "a", 60), ScheduledShop("top", "taobao", "b", 60)], now=T0)
    server.hset(key("parked"), "top|taobao|a", json.dumps({"reason": "x"}))
    assert scheduler.tick(now=T0) == ["top|taobao|b"]
    scheduler.sync([ScheduledShop("top", "taobao", "a", 60)], now=T0)
    assert server.zrange(key("due"), 0, -1) == [b"top|taobao|a"]


def test_a_schedule_file_is_read_with_defaults(tmp_path):
    path = tmp_path / "shops.toml"
    path.write_text(
        '[defaults]\napi = "top"\ninterval = "6h"\n\n[[shop]]\nseller = "a"\n\n'
        '[[shop]]\nseller = "b"\napi = "1688"\ninterval = "30m"\nmode = "full"\n\n'
        '[[shop]]\nseller = "c"\napi = "gateway"\nplatform = "1688"\ninterval = 90\n'
    )
    assert load(path) == [
        ScheduledShop("top", "taobao", "a", 21600.0),
        ScheduledShop("1688", "1688", "b", 1800.0, "full"),
        ScheduledShop("gateway", "1688", "c", 90.0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[shop]]\nseller = 'a'\n", r"#1: interval is required"),
        ("[[shop]]\nseller = 'a'\ninterval = '5s'\n", r"#1: interval must be at least 10 s"),
        ("[[shop]]\nseller = 'a'\ninterval = 'soon'\n", r"#1: interval must be seconds"),
        ("[[shop]]\ninterval = 60\n", r"#1: seller is required"),
        ("[[shop]]\nseller = 'a'\ninterval = 60\napi = 'x'\n", r"#1: api must be one of top, 1688, gateway"),
        ("[[shop]]\nseller = 'a'\ninterval = 60\nmode = 'fast'\n", r"#1: mode must be one of"),
        ("[[shop]]\nseller = 'a'\ninterval = 60\nsellers = 1\n", r"#1: unknown keys sellers"),
        (
            "[[shop]]\nseller = 'a'\ninterval = 60\n[[shop]]\nseller = 'a'\ninterval = 90\n",
            r"#2: .*listed twice",
        ),
        ("[defaults]\ninterval = 60\n", r"needs at least one \[\[shop\]\]"),
        ("[[shop]\n", r"not valid TOML"),
    ],
)
def test_a_bad_schedule_file_names_the_shop_and_the_field(tmp_path, text, message):
    path = tmp_path / "shops.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(path)

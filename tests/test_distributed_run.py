"""RunCoordinator against a real Redis: joining a run, the listing ledger, leases acknowledged only
when their output is stored, dead workers' leases requeued, one closer, shared counters, and a
Redis that lost the run's state."""

from __future__ import annotations

import pytest
import redis
from scrapy.utils.test import get_crawler

from shopcrawl.distributed import keys as K
from shopcrawl.distributed.run import RunCoordinator
from shopcrawl.distributed.scheduler import LEASE_META, LeasedQueue
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.spiders.shop import ShopSpider

T1, T2 = "2026-01-01T00:00:00+00:00", "2026-01-01T00:05:00+00:00"
CURRENT = K.current_key("s1")


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def joined(server, seller="s1", run_id="run-a", started=T1) -> RunCoordinator:
    coordinator = RunCoordinator(server, seller)
    coordinator.join(run_id, started)
    return coordinator


def spider():
    crawler = get_crawler(ShopSpider, {**SANDBOX_CREDENTIALS, "SHOPCRAWL_API_URL": "http://127.0.0.1:1/r"})
    return ShopSpider.from_crawler(crawler, seller_id="s1")


def leased(server, coordinator, ids=(1,)) -> str:
    """Queue a detail request and pop it as ``coordinator``'s worker: the id of its lease."""
    s = spider()
    queue = LeasedQueue(server, s, coordinator)
    assert queue.push(s._detail({str(n): {} for n in ids}), fingerprint=f"fp-{ids}")
    return queue.pop().meta[LEASE_META]


def test_the_first_worker_starts_the_run_and_later_ones_join_it(server):
    first = joined(server, run_id="run-a", started=T1)
    second = RunCoordinator(server, "s1")
    assert second.join("run-b", T2) == ("run-a", T1)
    assert (first.run_id, first.started_at) == ("run-a", T1)
    assert first.worker != second.worker and first.epoch == second.epoch
    other = RunCoordinator(server, "s2")
    assert other.join("run-c", T2) == ("run-c", T2)


def test_a_listing_page_claims_its_items_once_and_again_when_processed_again(server):
    first, second = joined(server), joined(server)
    assert first.claim("None|1", [1, 2, 3]) == {1, 2, 3}
    assert second.claim("None|2", [3, 4]) == {4}  # 3 was listed by page 1 (a window boundary)
    assert second.claim("None|1", [1, 2, 3]) == {1, 2, 3}  # page 1 redone after its worker died
    assert first.claim("None|3", []) == set()
    assert first.listed_count() == second.listed_count() == 4


def test_the_declared_total_is_set_by_the_first_listing_page_only(server):
    first, second = joined(server), joined(server)
    assert first.declared_total() is None
    first.set_declared_total(100)
    second.set_declared_total(90)
    assert second.declared_total() == 100


def test_a_lease_is_acknowledged_once_its_output_is_done_and_its_items_stored(server):
    coordinator = joined(server)
    lease = leased(server, coordinator, (11, 12))
    coordinator.expect(lease, 11)
    coordinator.expect(lease, 12)
    coordinator.stored([11], {})
    assert coordinator.pending() == (0, 1)  # the callback may still yield more
    coordinator.output_done(lease)
    assert coordinator.pending() == (0, 1) and coordinator.unacked()
    coordinator.stored([12], {})
    assert coordinator.pending() == (0, 0) and coordinator.unacked() == 0


def test_a_lease_whose_callback_yielded_no_items_is_acknowledged_at_once(server):
    coordinator = joined(server)
    lease = leased(server, coordinator)
    coordinator.output_done(lease)
    assert coordinator.pending() == (0, 0)


def test_the_leases_of_a_worker_whose_heartbeat_expired_go_back_to_the_queue(server):
    dead, alive = joined(server), joined(server)
    leased(server, dead, (1,))
    assert alive.reclaim_dead() == 0  # its heartbeat is still there
    server.delete(dead.keys.heartbeat(dead.worker))
    assert alive.reclaim_dead() == 1
    assert alive.pending() == (1, 0)
    again = LeasedQueue(server, spider(), alive).pop()
    assert again is not None and b"num_iids=1" in again.body
    assert alive.pending() == (0, 1)


def test_leases_this_worker_never_received_are_requeued_and_it_stays_registered(server):
    coordinator = joined(server)
    leased(server, coordinator)
    assert coordinator.requeue_orphans() == 1
    assert coordinator.pending() == (1, 0)
    assert server.sismember(coordinator.keys.workers, coordinator.worker)


def test_a_worker_that_leaves_gives_its_leases_back_and_deregisters(server):
    coordinator = joined(server)
    leased(server, coordinator)
    coordinator.leave()
    assert coordinator.pending() == (1, 0)
    assert not server.sismember(coordinator.keys.workers, coordinator.worker)
    assert not server.exists(coordinator.keys.heartbeat(coordinator.worker))


def test_exactly_one_worker_closes_the_run_and_the_next_crawl_starts_a_new_one(server):
    workers = [joined(server) for _ in range(3)]
    assert [w.try_close() for w in workers] == [True, False, False]
    assert joined(server, run_id="run-b").run_id == "run-b"


def test_a_beat_keeps_the_worker_alive_and_the_run_current(server):
    coordinator = joined(server)
    server.delete(coordinator.keys.heartbeat(coordinator.worker))
    server.delete(CURRENT)
    coordinator.beat()
    assert 0 < server.pttl(coordinator.keys.heartbeat(coordinator.worker)) <= 10_000
    assert server.get(CURRENT) == b"run-a"
    coordinator.try_close()
    coordinator.beat()  # a closed run is never made current again
    assert server.get(CURRENT) is None


def test_a_pointer_left_at_a_closed_run_starts_a_new_run_instead_of_joining_it(server):
    # A worker's beat read "not closed" just before another worker closed the run, and then
    # re-pointed the seller at it: the next crawl must not join that finished run (it would
    # list nothing and exit 0).
    closed = joined(server)
    assert closed.try_close()
    server.set(CURRENT, "run-a")
    assert joined(server, run_id="run-b").run_id == "run-b"
    assert server.get(CURRENT) == b"run-b"


def test_counters_add_each_workers_deltas_and_items_count_once(server):
    first, second = joined(server), joined(server)
    first.push_counters({"shopcrawl/api/calls": 5, "shopcrawl/ban/wait_seconds": 1.5})
    first.push_counters({"shopcrawl/api/calls": 8, "shopcrawl/ban/wait_seconds": 1.5})  # +3, +0
    second.push_counters({"shopcrawl/api/calls": 2}, accounted=[1, 2])
    first.stored([2, 3], {"shopcrawl/api/calls": 9, "shopcrawl/store/items": 2})
    assert first.counters() == {
        "shopcrawl/api/calls": 11,
        "shopcrawl/ban/wait_seconds": 1.5,
        "shopcrawl/store/items": 2,
    }
    assert server.smembers(first.keys.done) == {b"1", b"2", b"3"}


def test_after_redis_lost_the_run_one_worker_redoes_it_and_both_carry_on(server):
    first, second = joined(server), joined(server)
    first.claim("None|1", [1, 2])
    first.push_counters({"shopcrawl/api/calls": 5})
    lease = leased(server, first)
    first.expect(lease, 1)
    assert (first.check_state(), second.check_state()) == ("ok", "ok")
    server.flushall()
    assert first.check_state() == "recovered"
    assert second.check_state() == "reset"
    assert first.epoch == second.epoch and first.run_id == second.run_id == "run-a"
    assert (first.check_state(), second.check_state()) == ("ok", "ok")
    assert first.unacked() == 0  # the leases it waited for are gone with the state
    assert server.get(CURRENT) == b"run-a"
    assert joined(server, run_id="run-z").run_id == "run-a"  # new workers join the same run
    assert second.claim("None|1", [1, 2]) == {1, 2}
    first.push_counters({"shopcrawl/api/calls": 6})  # its whole total again, not the +1
    assert first.counters() == {"shopcrawl/api/calls": 6}
    assert first.pending() == (0, 0)


def run_ttls(server, coordinator) -> dict[str, int]:
    """TTL in s of every key of the run in Redis (found by SCAN, not by the names CLOSE knows)."""
    prefix = coordinator.keys.prefix.replace("[", "\\[").replace("]", "\\]").replace("*", "\\*")
    return {key.decode(): server.ttl(key) for key in server.scan_iter(match=prefix + "*", count=1000)}


def test_a_closed_runs_keys_expire_within_an_hour_whatever_late_workers_do(server):
    closer, late = joined(server), joined(server)
    leased(server, late, (1,))  # a lease, the dupefilter and seq (the queue is empty again)
    closer.claim("None|1", [1, 2])
    closer.stored([2], {"shopcrawl/api/calls": 3})
    server.sadd(closer.keys.workers, "gone")
    server.set(closer.keys.heartbeat("gone"), "1")  # a heartbeat without a TTL: CLOSE bounds it too
    keys = closer.keys
    before = run_ttls(server, closer)
    named = {keys.meta, keys.workers, keys.dupefilter, keys.seq, keys.owner, keys.counters, keys.done}
    assert {k for k, ttl in before.items() if ttl > K.CLOSED_TTL_SECONDS} == named | {
        keys.leases(late.worker)
    }
    assert closer.try_close()
    after = run_ttls(server, closer)
    assert after.keys() == before.keys() | {keys.closed}
    assert all(0 < ttl <= K.CLOSED_TTL_SECONDS for ttl in after.values()), after
    assert server.pttl(closer.keys.heartbeat(late.worker)) <= 10_000  # a heartbeat is never lengthened
    # A worker that finishes after the close pushes its counters, looks for work, fails to close,
    # beats and leaves: nothing it writes outlives the closed run.
    late.stored([1], {"shopcrawl/api/calls": 5})
    late.beat()
    assert late.pending() == (0, 1) and not late.try_close()
    s = spider()
    queue = LeasedQueue(server, s, late)
    assert queue.push(s._detail({"3": {}}), fingerprint="fp-3") and queue.pop() is not None
    late.claim("None|2", [3])
    late.leave()
    final = run_ttls(server, closer)
    assert all(0 < ttl <= K.CLOSED_TTL_SECONDS for ttl in final.values()), final
    assert final.keys() >= {keys.meta, keys.closed, keys.counters}  # `shopcrawl status` still shows it

"""The rules of a run's final status, its summary line, and when a running run counts as abandoned."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from shopcrawl.runs import FATAL_STAT, abandoned_reason, final_record, summary_line, this_process
from shopcrawl.stores.base import RunRecord, RunTally

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Crawl:
    run_id: str = "r1"
    platform: str = "taobao"
    seller_id: str = "s1"
    started_at: datetime = T0


def record(tally: RunTally, declared: int | None = 100, reason: str = "finished", **stats) -> RunRecord:
    return final_record(
        Crawl(),
        declared_total=declared,
        listed=100,
        tally=tally,
        stats={"shopcrawl/api/calls/taobao.items.onsale.get": 1, "retry/count": 2, **stats},
        ban_wait_seconds=1.5,
        close_reason=reason,
    )


def test_complete_only_when_every_declared_item_is_accounted_for():
    run = record(RunTally(stored=90, rejected=6, missing=4))
    assert (run.status, run.coverage, run.reason) == ("complete", 1.0, "")
    assert (run.items_stored, run.items_rejected, run.items_missing) == (90, 6, 4)
    assert run.api_calls == {"taobao.items.onsale.get": 1} and run.retries == 2


def test_items_only_listed_or_given_up_do_not_count():
    run = record(RunTally(stored=90, failed=10))
    assert run.status == "incomplete" and run.coverage == 0.9 and run.items_failed == 10
    assert run.reason == "10 declared items not accounted for (10 gave up after retries)"


def test_a_signal_makes_an_unfinished_run_interrupted_but_not_a_finished_one():
    stopped = record(RunTally(stored=71), reason="shutdown")
    assert stopped.status == "interrupted" and stopped.coverage == 0.71
    assert stopped.reason == "stopped by a signal; 29 declared items not accounted for"
    assert record(RunTally(stored=100), reason="shutdown").status == "complete"


def test_a_fatal_error_fails_the_run_whatever_was_stored():
    run = record(RunTally(stored=100), **{FATAL_STAT: "bad session"})
    assert (run.status, run.reason) == ("failed", "bad session")


def test_no_declared_total_is_incomplete():
    run = record(RunTally(), declared=None)
    assert (run.status, run.coverage, run.reason) == ("incomplete", None, "no declared total")


def test_an_empty_shop_is_complete():
    assert record(RunTally(), declared=0).status == "complete"


def test_summary_line_says_what_is_missing():
    run = record(RunTally(stored=1420), declared=2000, reason="shutdown")
    run.finished_at = T0 + timedelta(seconds=4)
    assert summary_line(run) == (
        "Run r1 INTERRUPTED: 1,420 / 2,000 items accounted for (71%); stored 1,420, rejected 0, "
        "missing 0; listed 100; API calls 1 (taobao.items.onsale.get 1); retries 2; ban wait 1.5 s; "
        "4.0 s; stopped by a signal; 580 declared items not accounted for"
    )


def running(owner: str = "", heartbeat: datetime | None = None) -> RunRecord:
    return RunRecord("old", "taobao", "s1", started_at=T0, owner=owner, heartbeat_at=heartbeat)


def test_a_run_whose_process_is_gone_is_abandoned_at_once():
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    owner = f"{socket.gethostname()}:{int(child.stdout)}"
    reason = abandoned_reason(running(owner, heartbeat=T0), now=T0 + timedelta(seconds=1))
    assert reason == f"abandoned: its crawl process {owner} ended without closing the run"


def test_a_live_or_recently_heartbeating_run_is_left_alone():
    assert this_process() == f"{socket.gethostname()}:{os.getpid()}"
    assert abandoned_reason(running(this_process(), T0), now=T0 + timedelta(hours=1)) is not None  # stale
    assert abandoned_reason(running(this_process(), T0), now=T0 + timedelta(seconds=30)) is None
    assert abandoned_reason(running("other-host:1", T0), now=T0 + timedelta(seconds=30)) is None
    assert abandoned_reason(running("", T0), now=T0 + timedelta(seconds=30)) is None


@pytest.mark.parametrize("owner", ["", "other-host:1"])
def test_a_run_without_a_heartbeat_for_a_while_is_abandoned(owner):
    reason = abandoned_reason(running(owner, heartbeat=T0), now=T0 + timedelta(minutes=5))
    assert reason == "abandoned: no heartbeat since 2026-01-01T00:00:00+00:00"


def test_reject_reasons_rank_rejected_before_missing_before_failed():
    assert [RunTally.kind(r) for r in ("invalid/price: x", "detail/missing: y", "failed/detail/-1: z")] == [
        1,
        2,
        3,
    ]
    assert RunTally(stored=1, rejected=2, missing=3, failed=4).accounted == 6

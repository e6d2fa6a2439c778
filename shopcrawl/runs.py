"""The run record, the rules for a run's final status, and the one-line summary every crawl ends with."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shopcrawl.stores.base import RunRecord, RunTally

FATAL_STAT = "shopcrawl/fatal"
SUMMARY_STAT = "shopcrawl/summary"
STATUS_STAT = "shopcrawl/status"
LISTING_GAP_STAT = "shopcrawl/listing/gap"  # why the listing plan cannot reach every declared item
# Scrapy's close reason when SIGINT or SIGTERM stopped the crawl (CrawlerProcess's shutdown handlers).
SHUTDOWN_REASON = "shutdown"
# A running run with no heartbeat for this long is abandoned when its seller is crawled again.
STALE_AFTER = timedelta(seconds=90)


class CrawlState(Protocol):
    run_id: str
    platform: str
    seller_id: str
    started_at: datetime


def coverage(accounted: int, declared: int | None) -> float | None:
    if declared is None:
        return None
    return 1.0 if declared == 0 else accounted / declared


def final_record(
    spider: CrawlState,
    *,
    declared_total: int | None,
    listed: int,
    tally: RunTally,
    stats: Mapping[str, Any],
    ban_wait_seconds: float,
    close_reason: str,
) -> RunRecord:
    """The run's record: counts per item from the store's tally, API counters from the stats (one
    process's, or a distributed run's sums). Complete means every declared item is accounted for:
    stored, rejected with a reason, or missing from the detail call."""
    cover = coverage(tally.accounted, declared_total)
    fatal = stats.get(FATAL_STAT)
    short = None if declared_total is None else max(0, declared_total - tally.accounted)
    if fatal:
        status, reason = "failed", str(fatal)
    elif cover is not None and cover >= 1.0:
        status, reason = "complete", ""
    else:
        status = "interrupted" if close_reason == SHUTDOWN_REASON else "incomplete"
        reason = "no declared total" if short is None else f"{short:,} declared items not accounted for"
        gap = stats.get(LISTING_GAP_STAT)
        if gap and declared_total is not None:
            reason = f"{gap} reached {listed:,} of {declared_total:,} items; {reason}"
        if status == "interrupted":
            reason = f"stopped by a signal; {reason}"
        if tally.failed:
            reason += f" ({tally.failed:,} gave up after retries)"
    calls = {
        key.removeprefix("shopcrawl/api/calls/"): int(value)
        for key, value in stats.items()
        if key.startswith("shopcrawl/api/calls/")
    }
    return RunRecord(
        run_id=spider.run_id,
        platform=spider.platform,
        seller_id=spider.seller_id,
        started_at=spider.started_at,
        finished_at=datetime.now(UTC),
        declared_total=declared_total,
        items_listed=listed,
        items_stored=tally.stored,
        items_rejected=tally.rejected,
        items_missing=tally.missing,
        items_failed=tally.failed,
        coverage=cover,
        api_calls=calls,
        retries=int(stats.get("retry/count", 0)),
        ban_wait_seconds=round(ban_wait_seconds, 3),
        status=status,
        reason=reason,
    )


def summary_line(run: RunRecord) -> str:
    declared = "?" if run.declared_total is None else f"{run.declared_total:,}"
    percent = "?" if run.coverage is None else f"{run.coverage * 100:.1f}%".replace(".0%", "%")
    accounted = run.items_stored + run.items_rejected + run.items_missing
    calls = ", ".join(f"{method} {count:,}" for method, count in sorted(run.api_calls.items()))
    elapsed = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    return (
        f"Run {run.run_id} {run.status.upper()}: {accounted:,} / {declared} items accounted for ({percent}); "
        f"stored {run.items_stored:,}, rejected {run.items_rejected:,}, missing {run.items_missing:,}; "
        f"listed {run.items_listed:,}; "
        f"API calls {sum(run.api_calls.values()):,} ({calls or 'none'}); retries {run.retries:,}; "
        f"ban wait {run.ban_wait_seconds:.1f} s; {elapsed:.1f} s"
        + (f"; {run.reason}" if run.reason and run.status != "complete" else "")
    )


def this_process() -> str:
    """The owner tag of a single-process run: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_gone(owner: str) -> bool:
    """True when ``owner`` is a process of this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def abandoned_reason(run: RunRecord, now: datetime) -> str | None:
    """Why a ``running`` run is abandoned, or None while it may still be alive.

    Its crawl process is gone (same host, pid no longer exists), or nothing has heartbeaten it for
    :data:`STALE_AFTER` (other hosts, distributed runs, pids reused)."""
    if run.owner and _pid_gone(run.owner):
        return f"abandoned: its crawl process {run.owner} ended without closing the run"
    last = run.heartbeat_at or run.started_at
    if now - last > STALE_AFTER:
        return f"abandoned: no heartbeat since {last.isoformat(timespec='seconds')}"
    return None

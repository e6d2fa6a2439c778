"""The run record and the one-line summary every crawl ends with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from shopcrawl.stores.base import RunRecord

FATAL_STAT = "shopcrawl/fatal"
SUMMARY_STAT = "shopcrawl/summary"


class CrawlState(Protocol):
    run_id: str
    platform: str
    seller_id: str
    started_at: datetime


def coverage(listed: int, declared: int | None) -> float | None:
    if declared is None:
        return None
    return 1.0 if declared == 0 else listed / declared


def final_record(
    spider: CrawlState,
    declared_total: int | None,
    listed: int,
    stats: dict[str, Any],
    ban_wait_seconds: float,
) -> RunRecord:
    """The run's record from its counters: one process's stats, or a distributed run's sums."""
    cover = coverage(listed, declared_total)
    fatal = stats.get(FATAL_STAT)
    if fatal:
        status, reason = "failed", str(fatal)
    elif cover is None or cover < 1.0:
        status = "incomplete"
        reason = "no declared total" if cover is None else f"listed {listed} of {declared_total}"
    else:
        status, reason = "complete", ""
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
        items_stored=int(stats.get("shopcrawl/store/items", 0)),
        items_rejected=int(stats.get("shopcrawl/item/invalid", 0)),
        items_missing=int(stats.get("shopcrawl/detail/missing", 0)),
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
    calls = ", ".join(f"{method} {count:,}" for method, count in sorted(run.api_calls.items()))
    elapsed = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    return (
        f"Run {run.run_id} {run.status.upper()}: {run.items_listed:,} / {declared} items ({percent}); "
        f"stored {run.items_stored:,}, rejected {run.items_rejected:,}, missing {run.items_missing:,}; "
        f"API calls {sum(run.api_calls.values()):,} ({calls or 'none'}); retries {run.retries:,}; "
        f"ban wait {run.ban_wait_seconds:.1f} s; {elapsed:.1f} s"
        + (f"; {run.reason}" if run.reason and run.status != "complete" else "")
    )

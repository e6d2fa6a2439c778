"""Crawls as measured subprocesses: ``scrapy crawl shop`` against a sandbox into a store, with the
sandbox's call counters, the store's count and the run summary; a crawl that did not exit 0 or did not
store every item fails its scenario."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.procs import Measured, ScenarioFailed, child_env, process_cpu_seconds, profiled, run_measured
from benchmarks.services import DIALECTS, Sandbox, mongo_count, mongo_drop
from shopcrawl.sandbox.local import crawl_command, crawl_env

SUMMARY = re.compile(
    r"Run (?P<run_id>\S+) (?P<status>[A-Z]+): (?P<accounted>[\d,]+) / (?P<declared>[\d,]+)"
    r" items accounted for \((?P<coverage>[\d.]+)%\); stored (?P<stored>[\d,]+)"
    r".*?retries (?P<retries>[\d,]+); ban wait (?P<ban_wait>[\d.]+) s"
)


@dataclass
class Store:
    """Where a crawl writes: ``kind`` is ``sqlite``, ``mongodb`` or ``null``."""

    kind: str
    uri: str
    path: Path | None = None
    server: str = ""
    database: str = ""

    def count(self, summary: Mapping[str, Any] | None) -> int:
        """Distinct items the store holds (null: the ``stored`` of the crawl's summary line)."""
        if self.kind == "sqlite":
            assert self.path is not None
            if not self.path.exists():
                return 0
            with closing(sqlite3.connect(self.path)) as conn:
                count: int = conn.execute("SELECT COUNT(DISTINCT num_iid) FROM items").fetchone()[0]
                return count
        if self.kind == "mongodb":
            return mongo_count(self.server, self.database, "items")
        return int(summary["stored"]) if summary else 0


def sqlite_store(workdir: Path, name: str) -> Store:
    path = workdir / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Store("sqlite", f"sqlite:///{path}", path=path)


NULL_STORE = Store("null", "null://")


def sqlite_runs(store: Store) -> list[dict[str, Any]]:
    """Every run record of a SQLite store (the ``runs`` table), oldest first; none before the first crawl."""
    assert store.kind == "sqlite" and store.path is not None
    if not store.path.exists():
        return []
    with closing(sqlite3.connect(store.path)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM runs ORDER BY started_at, run_id").fetchall()
    return [dict(row) for row in rows]


def mongo_store(server: str, database: str, *, options: str = "") -> Store:
    """A store in ``database`` on ``server`` (dropped first: a fresh store)."""
    mongo_drop(server, database)
    base, _, query = server.rstrip("/").partition("?")
    query = "&".join(q for q in (query, options) if q)
    uri = f"{base.rstrip('/')}/{database}" + (f"?{query}" if query else "")
    return Store("mongodb", uri, server=server, database=database)


@dataclass
class Crawl:
    """One measured ``scrapy crawl shop``: the process, the sandbox's counters, the store's count."""

    name: str
    measured: Measured
    calls: int
    calls_by_method: dict[str, int]
    outcomes: dict[str, int]
    bans_started: int
    stored: int
    summary: dict[str, Any] = field(default_factory=dict)
    sandbox_cpu: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        m = self.measured
        return {
            "name": self.name,
            "exit": m.exit,
            "wall_s": round(m.wall, 3),
            "cpu_s": round(m.cpu, 3),
            "peak_rss_mib": round(m.rss_mib, 1),
            "calls": self.calls,
            "calls_by_method": self.calls_by_method,
            "outcomes": self.outcomes,
            "bans_started": self.bans_started,
            "stored": self.stored,
            "summary": self.summary,
            "sandbox_cpu_s": round(self.sandbox_cpu, 3),
        }


def parse_summary(stdout: str) -> dict[str, Any]:
    """The fields of the run summary line ``scrapy crawl shop`` prints last (empty if none)."""
    found = list(SUMMARY.finditer(stdout))
    if not found:
        return {}
    fields = found[-1].groupdict()
    out: dict[str, Any] = {"run_id": fields["run_id"], "status": fields["status"].lower()}
    for key in ("accounted", "declared", "stored", "retries"):
        out[key] = int(fields[key].replace(",", ""))
    out["coverage"] = float(fields["coverage"]) / 100
    out["ban_wait_s"] = float(fields["ban_wait"])
    return out


def crawl_settings(extra: Mapping[str, object] | None = None) -> dict[str, object]:
    return {"LOG_LEVEL": "WARNING", **(extra or {})}


def shop_env(
    box: Sandbox, dialect: str, store: Store, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A crawl's environment: aimed at ``box`` through ``dialect``, writing ``store``; no SHOPCRAWL_* or
    REDIS_URL of ours leaks in (a crawl is distributed only when ``env`` says so)."""
    api, platform, _ = DIALECTS[dialect]
    full = crawl_env(box.url(dialect), store.uri, {"SHOPCRAWL_API": api, "SHOPCRAWL_PLATFORM": platform})
    full.pop("REDIS_URL", None)
    return child_env({**full, **(env or {})})


def crawl(
    box: Sandbox,
    store: Store,
    workdir: Path,
    name: str,
    *,
    dialect: str = "top",
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    expect: int | None = None,
) -> Crawl:
    """Reset the sandbox's counters, run one crawl, check it exited 0 and stored ``expect`` items."""
    box.reset()
    command = profiled(crawl_command("demo", crawl_settings(settings), *args), name)
    sandbox_cpu = process_cpu_seconds(box.pid)
    measured = run_measured(command, shop_env(box, dialect, store, env), workdir, name)
    return finish(
        box, store, name, measured, expect=box.items if expect is None else expect, since=sandbox_cpu
    )


def finish(box: Sandbox, store: Store, name: str, measured: Measured, *, expect: int, since: float) -> Crawl:
    """The crawl's figures once its process(es) ended; ``since`` is the sandbox's CPU s at the start."""
    sandbox_cpu = process_cpu_seconds(box.pid) - since
    stats = box.stats()
    summary = parse_summary(measured.stdout)
    stored = store.count(summary)
    result = Crawl(
        name=name,
        measured=measured,
        calls=sum(stats["calls"].values()),
        calls_by_method=dict(stats["calls"]),
        outcomes=dict(stats["outcomes"]),
        bans_started=len(stats["bans"]),
        stored=stored,
        summary=summary,
        sandbox_cpu=sandbox_cpu,
    )
    check(name, measured, stored, expect)
    return result


def check(name: str, measured: Measured, stored: int, expect: int) -> None:
    if measured.exit != 0:
        raise ScenarioFailed(f"{name}: exit status {measured.exit}\n{measured.tail()}")
    if stored != expect:
        raise ScenarioFailed(f"{name}: stored {stored:,} items, expected {expect:,}\n{measured.tail()}")

"""Scenario 5: 1, 2 and 4 workers sharing one run over Redis, no latency, no QPS limit."""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

from benchmarks.harness import crawl_settings, shop_env, sqlite_store
from benchmarks.procs import Child, ScenarioFailed, process_cpu_seconds, profiled
from benchmarks.scenarios import (
    Context,
    Section,
    Target,
    f,
    interleaved,
    median,
    n,
    ratio,
    reps_note,
    warm_up,
)
from benchmarks.services import redis, sandbox
from shopcrawl.sandbox.local import crawl_command

NUMBER = 5
TITLE = "Workers over Redis"
WORKERS = (1, 2, 4)
TARGET = 1.7  # 2 workers at least 1.7x the items/s of 1


def run(ctx: Context) -> Section:
    items = ctx.size(20_000, 600)
    with ExitStack() as stack:
        box = stack.enter_context(sandbox(items, workdir=ctx.workdir))
        warm_up(ctx, box, NUMBER)
        counter = [0]

        def workers(count: int) -> Any:
            def go() -> dict[str, Any]:
                counter[0] += 1
                return _run_workers(ctx, box, count, counter[0])

            return go

        runs = interleaved(
            ctx, NUMBER, ctx.reps, [(f"{k} worker{'s' if k > 1 else ''}", workers(k)) for k in WORKERS]
        )
    return _section(ctx, items, runs)


def _run_workers(ctx: Context, box: Any, count: int, serial: int) -> dict[str, Any]:
    """``count`` workers started together over a fresh redis-server into one new SQLite store."""
    folder = ctx.folder(f"workers-{serial}")
    store = sqlite_store(folder, "shop")
    with redis(folder / "redis") as url:
        box.reset()
        sandbox_cpu = process_cpu_seconds(box.pid)
        env = shop_env(box, "top", store, {"REDIS_URL": url})
        command = crawl_command("demo", crawl_settings())
        started = time.perf_counter()
        children = [
            Child(profiled(command, f"workers-{serial}-{k}"), env, folder, f"worker-{k}")
            for k in range(count)
        ]
        measured = [child.reap() for child in children]
        wall = time.perf_counter() - started
    sandbox_cpu = process_cpu_seconds(box.pid) - sandbox_cpu
    stored = store.count(None)
    calls = sum(box.stats()["calls"].values())
    bad = [k for k, m in enumerate(measured) if m.exit != 0]
    if bad or stored != box.items:
        tails = "\n".join(f"worker {k} exit {measured[k].exit}:\n{measured[k].tail()}" for k in bad)
        raise ScenarioFailed(f"{count} workers: stored {stored:,} of {box.items:,}; {tails}")
    return {
        "workers": count,
        "items": stored,
        "wall_s": wall,
        "cpu_s": sum(m.cpu for m in measured),
        "worker_cpu_s": [m.cpu for m in measured],
        "worker_wall_s": [m.wall for m in measured],
        "peak_rss_mib": [m.rss_mib for m in measured],
        "sandbox_cpu_s": sandbox_cpu,
        "calls": calls,
    }


def _section(ctx: Context, items: int, runs: dict[str, list[Any]]) -> Section:
    med = {}
    for name, rs in runs.items():
        med[name] = {
            "workers": rs[0]["workers"],
            "wall_s": median([r["wall_s"] for r in rs]),
            "items_per_s": median([r["items"] / r["wall_s"] for r in rs]),
            "cpu_per_1000": median([r["cpu_s"] * 1000 / r["items"] for r in rs]),
            "calls": median([r["calls"] for r in rs]),
        }
    one = med["1 worker"]["items_per_s"]
    rows = []
    for m in med.values():
        m["speedup"] = m["items_per_s"] / one
        rows.append([str(m["workers"]), f(m["wall_s"]), n(m["items_per_s"]), f(m["cpu_per_1000"]),
                     ratio(m["speedup"]), n(m["calls"])])  # fmt: skip
    two = med["2 workers"]["speedup"]
    what = [
        f"One sandbox shop of {items:,} items, no latency, `SHOPCRAWL_QPS` unset. 1, 2 and 4 shopcrawl "
        "workers (`scrapy crawl shop` with the same `REDIS_URL`, no `-a run_id`: the first worker starts the "
        "run and the others join it) started together, all writing one new SQLite store (SQLite serves "
        "several workers on one machine; `null://` cannot: each worker's null store counts only its own "
        "items, so the run that closes reports the others' as missing and exits 3). A fresh redis-server "
        "(tests.services.RedisProcess) for every crawl. Wall time runs from the first start to the last "
        "exit.",
        reps_note(ctx.reps) + " An unmeasured single-process crawl ran first (not with --quick), to warm "
        f"the sandbox. This machine has {_cores()} cores, shared by the workers, the sandbox and Redis.",
    ]
    notes = ["Baseline of the speed-up column: 1 worker's items/s. CPU is the sum over the workers."]
    target = Target(
        two >= TARGET,
        f"2 workers at least {TARGET}× the items/s of 1: {two:.2f}× ({med['2 workers']['items_per_s']:,.0f} "
        f"against {one:,.0f} items/s); 4 workers {med['4 workers']['speedup']:.2f}×.",
    )
    headers = ["workers", "wall s", "items/s", "CPU s per 1,000 items (all workers)", "speed-up vs 1 worker",
               "calls"]  # fmt: skip
    raw = {"items": items, "runs": runs, "medians": med}
    return Section(NUMBER, TITLE, what, headers, rows, notes, target, raw)


def _cores() -> int:
    import os

    return os.cpu_count() or 1

"""Scenario 2: wall time of a crawl with 30 ms of network latency per API call, against the seed
client, a plain Scrapy spider into MongoDB and shopcrawl's own null-store ceiling."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Any

from benchmarks.harness import NULL_STORE, Crawl, crawl, sqlite_store
from benchmarks.procs import ScenarioFailed, child_env, run_measured
from benchmarks.scenarios import Context, Section, Target, f, interleaved, median, n, ratio, reps_note
from benchmarks.scenarios.calls import run_seed
from benchmarks.services import mongo_count, mongo_drop, mongo_server, sandbox

NUMBER = 2
TITLE = "Wall time with 30 ms of latency per call"
LATENCY_MS = 30
TARGET = 50.0  # shopcrawl (SQLite) at least 50x the seed client per item


def plain_scrapy(ctx: Context, box: Any, server: str, rep: list[int]) -> dict[str, Any]:
    """The plain Scrapy spider (benchmarks/baselines/plain_scrapy.py) into a fresh database."""
    rep[0] += 1
    database = f"plain_{rep[0]}"
    mongo_drop(server, database)
    box.reset()
    args = [sys.executable, "-m", "benchmarks.baselines.plain_scrapy", "--url", box.url("top")]
    args += ["--mongo-uri", server, "--database", database, "--log-level", "WARNING"]
    measured = run_measured(args, child_env(), ctx.workdir, f"plain-scrapy-{rep[0]}")
    stored = mongo_count(server, database, "scrapy_items")
    mongo_drop(server, database)
    calls = sum(box.stats()["calls"].values())
    if measured.exit != 0 or stored != box.items:
        raise ScenarioFailed(
            f"plain Scrapy spider: exit {measured.exit}, stored {stored:,}\n{measured.tail()}"
        )
    return {"items": stored, "wall_s": measured.wall, "cpu_s": measured.cpu, "calls": calls}


def run(ctx: Context) -> Section:
    items = ctx.size(10_000, 300)
    seed_items = ctx.size(1_000, 50)
    counter = [0]
    with ExitStack() as stack:
        box = stack.enter_context(sandbox(items, "--latency-ms", str(LATENCY_MS), workdir=ctx.workdir))
        mongo = stack.enter_context(mongo_server(ctx.folder("latency-mongo"), ctx.mongo_uri))
        ctx.facts["mongo_version"] = mongo.version
        folder = ctx.folder("latency")

        def ours(store_kind: str) -> Any:
            def go() -> dict[str, Any]:
                store = sqlite_store(folder, "shop") if store_kind == "sqlite" else NULL_STORE
                result: Crawl = crawl(box, store, ctx.workdir, f"latency-{store_kind}")
                return {"items": result.stored, "wall_s": result.measured.wall, "cpu_s": result.measured.cpu,
                        "peak_rss_mib": result.measured.rss_mib, "calls": result.calls}  # fmt: skip

            return go

        variants = [
            ("shopcrawl → SQLite", ours("sqlite")),
            ("shopcrawl → null://", ours("null")),
            ("plain Scrapy → MongoDB", lambda: plain_scrapy(ctx, box, mongo.uri, counter)),
            ("seed client", lambda: run_seed(box, ctx, seed_items, "latency-seed")),
        ]
        runs = interleaved(ctx, NUMBER, ctx.reps, variants)
    return _section(ctx, items, seed_items, runs, mongo.version)


def _section(ctx: Context, items: int, seed_items: int, runs: dict[str, list[Any]], server: str) -> Section:
    med = {
        name: {"items": rs[0]["items"], "wall_s": median([r["wall_s"] for r in rs]),
               "calls": median([r["calls"] for r in rs])}
        for name, rs in runs.items()
    }  # fmt: skip
    for m in med.values():
        m["ms_per_item"] = m["wall_s"] * 1000 / m["items"]
    seed_ms = med["seed client"]["ms_per_item"]
    rows = [
        [
            name,
            n(m["items"]),
            f(m["wall_s"]),
            f(m["ms_per_item"], 3),
            ratio(seed_ms / m["ms_per_item"], 1),
            n(m["calls"]),
        ]
        for name, m in med.items()
    ]
    ours = seed_ms / med["shopcrawl → SQLite"]["ms_per_item"]
    what = [
        f"One sandbox shop of {items:,} items with `--latency-ms {LATENCY_MS}` (every API call held "
        f"{LATENCY_MS} ms, no CPU spent, as a network would). shopcrawl crawled it into a new SQLite store "
        "and into `null://` (no store: the ceiling); the plain Scrapy spider "
        "(`benchmarks/baselines/plain_scrapy.py`: the Scrapy docs' MongoPipeline, one `insert_one` per item, "
        f"default concurrency) into a new database on the MongoDB-wire server ({server}); the seed client "
        f"(`benchmarks/baselines/seed_client.py`, sequential) listed and fetched the first {seed_items:,} "
        f"items only: all {items:,} would take about {seed_ms * items / 1000:,.0f} s a repetition. The "
        "comparison is per item (ms per item), which for a sequential client does not depend on the shop's "
        "size.",
        reps_note(ctx.reps) + " Wall time is the child process's, start-up included.",
    ]
    notes = ["Baseline of the ratio column: the seed client's ms per item."]
    verdict = ours >= TARGET
    target = Target(
        verdict,
        f"shopcrawl → SQLite at least {TARGET:.0f}× faster per item than the seed client: {ours:.1f}× "
        f"({med['shopcrawl → SQLite']['ms_per_item']:.3f} ms against {seed_ms:.2f} ms per item).",
    )
    headers = [
        "crawler",
        "items",
        "seconds",
        "ms per item",
        "× faster per item than the seed client",
        "calls",
    ]
    raw = {"items": items, "seed_items": seed_items, "latency_ms": LATENCY_MS, "runs": runs, "medians": med}
    return Section(NUMBER, TITLE, what, headers, rows, notes, target, raw)

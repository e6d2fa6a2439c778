"""Scenario 3: CPU-bound throughput (no latency) into null://, SQLite and MongoDB, as ratios to the
null store: the ceiling of a crawl that stores nothing."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from benchmarks.harness import NULL_STORE, Crawl, crawl, mongo_store, sqlite_store
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
from benchmarks.services import mongo_drop, mongo_server, sandbox

NUMBER = 3
TITLE = "CPU-bound throughput (no latency)"
TARGET = 0.75  # each store at least 0.75x the null store's items/s


def run(ctx: Context) -> Section:
    items = ctx.size(20_000, 1_000)
    with ExitStack() as stack:
        box = stack.enter_context(sandbox(items, workdir=ctx.workdir))
        mongo = stack.enter_context(mongo_server(ctx.folder("throughput-mongo"), ctx.mongo_uri))
        ctx.facts["mongo_version"] = mongo.version
        folder = ctx.folder("throughput")
        count = [0]

        def null() -> dict[str, Any]:
            return _figures(crawl(box, NULL_STORE, ctx.workdir, "throughput-null"))

        def sqlite() -> dict[str, Any]:
            return _figures(crawl(box, sqlite_store(folder, "shop"), ctx.workdir, "throughput-sqlite"))

        def mongodb() -> dict[str, Any]:
            count[0] += 1
            store = mongo_store(mongo.uri, f"throughput_{count[0]}")
            before = mongo.cpu_seconds()
            try:
                result = _figures(crawl(box, store, ctx.workdir, "throughput-mongodb"))
            finally:
                after = mongo.cpu_seconds()
                mongo_drop(mongo.uri, store.database)
            result["server_cpu_s"] = None if before is None or after is None else after - before
            return result

        variants = [("null://", null), ("SQLite", sqlite), ("MongoDB", mongodb)]
        warm_up(ctx, box, NUMBER)
        runs = interleaved(ctx, NUMBER, ctx.reps, variants)
    return _section(ctx, items, runs, mongo.version, external=mongo.pid is None)


def _figures(result: Crawl) -> dict[str, Any]:
    m = result.measured
    return {"items": result.stored, "wall_s": m.wall, "cpu_s": m.cpu, "sandbox_cpu_s": result.sandbox_cpu,
            "calls": result.calls, "peak_rss_mib": m.rss_mib}  # fmt: skip


def _section(ctx: Context, items: int, runs: dict[str, list[Any]], server: str, *, external: bool) -> Section:
    med: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        med[name] = {
            "items_per_s": median([r["items"] / r["wall_s"] for r in rs]),
            "cpu_per_1000": median([r["cpu_s"] * 1000 / r["items"] for r in rs]),
            "sandbox_cpu_s": median([r["sandbox_cpu_s"] for r in rs]),
        }
        cpu = [r["server_cpu_s"] for r in rs if r.get("server_cpu_s") is not None]
        med[name]["server_cpu_s"] = median(cpu) if cpu else None
    ceiling = med["null://"]["items_per_s"]
    rows = []
    for name, m in med.items():
        m["ratio"] = m["items_per_s"] / ceiling
        server_cpu = f(m["server_cpu_s"]) if name == "MongoDB" and not external else "—"
        rows.append([name, n(m["items_per_s"]), f(m["cpu_per_1000"]), ratio(m["ratio"]), server_cpu,
                     f(m["sandbox_cpu_s"])])  # fmt: skip
    what = [
        f"One sandbox shop of {items:,} items, no latency, crawled by shopcrawl (TOP) into `null://`, a new "
        f"SQLite store and a new database on the MongoDB-wire server ({server}; the store's default write "
        "shape for it) in turn. Items/s = items stored / the crawl's wall time (start-up included); CPU is "
        "the crawl process's user + system time. The server's and the sandbox's CPU seconds during the "
        "crawl (from /proc/<pid>/stat) show where the rest of the machine went: this machine has "
        "two cores for the crawl, the sandbox and the database.",
        reps_note(ctx.reps)
        + " An unmeasured crawl ran first (not with --quick), so that no measured one met the sandbox's "
        "cold caches.",
    ]
    if external:
        what.append("The MongoDB server was given with --mongo-uri, so its CPU seconds are not measured.")
    notes = [
        "Baseline of the ratio column: the null store's items/s (the ceiling: the same crawl storing "
        "nothing)."
    ]
    sqlite_ratio, mongo_ratio = med["SQLite"]["ratio"], med["MongoDB"]["ratio"]
    met = sqlite_ratio >= TARGET and mongo_ratio >= TARGET
    target = Target(
        met,
        f"each store at least {TARGET}× the null store's items/s: SQLite {sqlite_ratio:.2f}× "
        f"({med['SQLite']['items_per_s']:,.0f} items/s), MongoDB {mongo_ratio:.2f}× "
        f"({med['MongoDB']['items_per_s']:,.0f} items/s), null:// {ceiling:,.0f} items/s.",
    )
    headers = ["store", "items/s", "CPU s per 1,000 items", "ratio to null://", "DB server CPU s",
               "sandbox CPU s"]  # fmt: skip
    raw = {"items": items, "runs": runs, "medians": med}
    return Section(NUMBER, TITLE, what, headers, rows, notes, target, raw)

"""Scenario 4: peak RSS of crawls of 1,000, 10,000 and 100,000 items, into SQLite and into null://
(which separates the store's share)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from benchmarks.harness import NULL_STORE, crawl, sqlite_store
from benchmarks.procs import progress
from benchmarks.scenarios import Context, Section, Target, f, interleaved, median, n, ratio, reps_note
from benchmarks.services import sandbox

NUMBER = 4
TITLE = "Memory"
TARGET = 1.2  # peak RSS at 100k items at most 1.2x that at 10k


def run(ctx: Context) -> Section:
    sizes = [ctx.size(1_000, 200), ctx.size(10_000, 500), ctx.size(100_000, 1_500)]
    folder = ctx.folder("memory")
    with ExitStack() as stack:
        progress(f"  [{NUMBER}] starting sandboxes of {', '.join(f'{s:,}' for s in sizes)} items ...")
        boxes = {size: stack.enter_context(sandbox(size, workdir=ctx.workdir)) for size in sizes}
        variants = []
        for size, box in boxes.items():
            variants.append((f"SQLite {size:,}", _crawler(ctx, box, "sqlite", folder)))
            variants.append((f"null:// {size:,}", _crawler(ctx, box, "null", folder)))
        runs = interleaved(ctx, NUMBER, ctx.reps, variants)
    return _section(ctx, sizes, runs)


def _crawler(ctx: Context, box: Any, kind: str, folder: Any) -> Any:
    def go() -> dict[str, Any]:
        store = sqlite_store(folder, f"shop-{box.items}") if kind == "sqlite" else NULL_STORE
        result = crawl(box, store, ctx.workdir, f"memory-{kind}-{box.items}")
        return {
            "items": result.stored,
            "peak_rss_mib": result.measured.rss_mib,
            "wall_s": result.measured.wall,
        }

    return go


def _section(ctx: Context, sizes: list[int], runs: dict[str, list[Any]]) -> Section:
    small, middle, large = sizes
    rss = {name: median([r["peak_rss_mib"] for r in rs]) for name, rs in runs.items()}
    rows = []
    growth: dict[str, float] = {}
    for store in ("SQLite", "null://"):
        base = rss[f"{store} {small:,}"]
        growth[store] = rss[f"{store} {large:,}"] / rss[f"{store} {middle:,}"]
        for size in sizes:
            mib = rss[f"{store} {size:,}"]
            per_1000 = None if size == small else (mib - base) / ((size - small) / 1000)
            rows.append([store, n(size), f(mib, 1), f(per_1000, 3),
                         ratio(growth[store]) if size == large else ""])  # fmt: skip
    what = [
        f"Three sandbox shops ({', '.join(f'{s:,}' for s in sizes)} items; a crawl cannot be limited to "
        "part of a shop, so one sandbox per size), each crawled by shopcrawl (TOP, no latency) into a new "
        "SQLite store and into `null://`. Peak RSS is the crawl process's `ru_maxrss` (from `wait4`). The "
        "null store keeps nothing, so the difference between the two rows of a size is the store's share.",
        reps_note(ctx.reps),
    ]
    notes = [
        f"MiB per 1,000 items is the growth over the {small:,}-item figure of the same store; the last "
        f"column is the {large:,}-item figure / the {middle:,}-item figure (the target's ratio)."
    ]
    target = Target(
        growth["SQLite"] <= TARGET,
        f"peak RSS at {large:,} items at most {TARGET}× that at {middle:,} (SQLite): "
        f"{growth['SQLite']:.2f}× ({rss[f'SQLite {large:,}']:.0f} MiB against "
        f"{rss[f'SQLite {middle:,}']:.0f} MiB); "
        f"null:// {growth['null://']:.2f}×.",
    )
    headers = ["store", "items", "peak RSS MiB", "MiB per 1,000 items above the smallest",
               f"ratio {large:,} / {middle:,}"]  # fmt: skip
    raw = {"sizes": sizes, "runs": runs, "medians": rss}
    return Section(NUMBER, TITLE, what, headers, rows, notes, target, raw)

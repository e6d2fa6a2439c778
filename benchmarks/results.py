"""RESULTS.md and results.json: the machine, the versions, one section per scenario, the targets missed.

Everything after :data:`MARKER` in an existing RESULTS.md is hand-written analysis and is kept verbatim.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.procs import REPO
from benchmarks.scenarios import Section

MARKER = "<!-- analysis below is kept across runs -->"
PACKAGES = {"scrapy": "scrapy", "Twisted": "twisted", "pymongo": "pymongo", "redis-py": "redis",
            "scrapy-redis": "scrapy-redis", "aiohttp": "aiohttp"}  # fmt: skip


def _run(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=REPO)
    except OSError as error:
        return f"unavailable ({error})"
    return (
        (done.stdout or done.stderr).strip()
        if done.returncode == 0
        else f"unavailable ({done.stderr.strip()})"
    )


def commit() -> str:
    head = _run("git", "rev-parse", "--short", "HEAD")
    return head + (" dirty" if _run("git", "status", "--porcelain").strip() else "")


def machine(load_start: tuple[float, ...], load_end: tuple[float, ...]) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), ""
    )
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total_kib = next(
        (int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal")), 0
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model or platform.processor(),
        "ram_gib": round(total_kib / 1024 / 1024, 1),
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in load_end],
    }


def versions(facts: dict[str, str]) -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for label, name in PACKAGES.items():
        try:
            found[label] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[label] = "not installed"
    found["SQLite library (sqlite3.sqlite_version)"] = sqlite3.sqlite_version
    redis_server = _run("redis-server", "--version")
    match = re.search(r"v=(\S+)", redis_server)
    found["redis-server"] = match.group(1) if match else redis_server
    found["MongoDB-wire server"] = facts.get("mongo_version") or "not used in this run"
    return found


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _section(section: Section) -> list[str]:
    lines = [f"## {section.number}. {section.title}", ""]
    for paragraph in section.what:
        lines += [paragraph, ""]
    lines += [*_table(section.headers, section.rows), ""]
    for note in section.notes:
        lines += [note, ""]
    verdict = {True: "met", False: "MISSED", None: "none"}[section.target.met]
    lines += [f"**Target:** {verdict}: {section.target.text}" if section.target.met is not None
              else f"**Target:** {section.target.text}", ""]  # fmt: skip
    return lines


def kept_analysis(out: Path) -> str:
    if out.exists():
        text = out.read_text()
        if MARKER in text:
            return text.split(MARKER, 1)[1].lstrip("\n")
    return "(Hand-written: for each missed target, what the profile showed and why it was missed.)\n"


def write(
    out: Path,
    sections: list[Section],
    failures: dict[int, str],
    meta: dict[str, Any],
) -> None:
    """Write ``out`` (RESULTS.md) and ``results.json`` beside it."""
    analysis = kept_analysis(out)
    m, v = meta["machine"], meta["versions"]
    start, end = (", ".join(map(str, m[k])) for k in ("load_start", "load_end"))
    lines = [
        "# shopcrawl benchmark results",
        "",
        f"- Date (UTC): {meta['date']}",
        f"- Commit: {meta['commit']}",
        f"- Machine: {m['cores']} cores, {m['cpu']}, {m['ram_gib']} GiB RAM; load average (1, 5, 15 min) "
        f"{start} at the start, {end} at the end",
        f"- Python {v['python']}",
        "- Packages: "
        + ", ".join(f"{k} {v[k]}" for k in [*PACKAGES, "SQLite library (sqlite3.sqlite_version)"]),
        f"- Servers: redis-server {v['redis-server']}; MongoDB-wire server: {v['MongoDB-wire server']}",
        f"- Command: `{meta['command']}` ({meta['duration_s']:.0f} s)",
        "- Medians: "
        + (
            f"each figure is the median of {meta['reps']} interleaved repetitions"
            if meta["reps"] > 1
            else "one repetition (`--reps 1`), so each figure is a single measurement"
        )
        + " unless its section says otherwise; every repetition runs all variants of a scenario in turn "
        "(A B C A B C A B C), so load drifts hit all alike.",
        "",
    ]
    if meta.get("profiled"):
        lines += ["**Profiled run** (`--profile`): every crawl ran under pyinstrument; the figures include "
                  "its overhead.", ""]  # fmt: skip
    if meta["quick"]:
        lines += ["**Quick pass** (`--quick`): tiny shops, so that the harness keeps working; the figures "
                  "mean nothing.", ""]  # fmt: skip
    failed = {
        n: [f"## {n}. could not run", "", "```", e.strip()[-3000:], "```", ""] for n, e in failures.items()
    }
    for _number, part in sorted([*((s.number, _section(s)) for s in sections), *failed.items()]):
        lines += part
    lines += ["## Targets missed and why", ""]
    missed = [f"- {s.number}. {s.title}: {s.target.text}" for s in sections if s.target.met is False]
    missed += [f"- {k}. could not run (see its section)" for k in sorted(failures)]
    lines += [*(missed or ["- none"]), ""]
    lines += [MARKER, "", analysis]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip("\n") + "\n")
    raw = {
        **meta,
        "scenarios": {
            str(s.number): {"title": s.title, "target": {"met": s.target.met, "text": s.target.text}, **s.raw}
            for s in sections
        },
        "failures": {str(k): v for k, v in failures.items()},
    }
    (out.parent / "results.json").write_text(
        json.dumps(raw, indent=1, ensure_ascii=False, default=str) + "\n"
    )


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

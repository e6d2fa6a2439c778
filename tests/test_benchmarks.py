"""``python -m benchmarks --quick`` end to end: every scenario runs against the real sandbox, FerretDB and
redis-server, and RESULTS.md holds its eight tables with sane figures. Timing is never asserted."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys

from tests.services import REPO, ferretdb_binary, unavailable

MARKER = "<!-- analysis below is kept across runs -->"
TITLES = {
    1: "API calls per item",
    2: "Wall time with 30 ms of latency per call",
    3: "CPU-bound throughput (no latency)",
    4: "Memory",
    5: "Workers over Redis",
    6: "Faults and bans",
    7: "Reports",
    8: "Fleet: shops per hour per worker",
}


def _services() -> list[str]:
    """The --mongo-uri argument (if a server is given), after checking the services the pass needs."""
    if (os.environ.get("SHOPCRAWL_REDIS_SERVER") or shutil.which("redis-server")) is None:
        unavailable("no redis-server: apt-get install redis-server (scripts/test.sh does)")
    explicit = os.environ.get("SHOPCRAWL_TEST_MONGO_URI")
    if explicit:
        return ["--mongo-uri", explicit]
    if ferretdb_binary() is None:
        unavailable("no FerretDB binary: install Go or set SHOPCRAWL_FERRETDB_BIN / SHOPCRAWL_TEST_MONGO_URI")
    return []


def test_quick_pass_writes_eight_sane_tables_and_keeps_the_analysis(tmp_path):
    extra = _services()
    out = tmp_path / "RESULTS.md"
    out.write_text(f"# old results\n\n{MARKER}\n\nHand-written analysis: keep me.\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    binary = ferretdb_binary() if not extra else None
    if binary:
        env["SHOPCRAWL_FERRETDB_BIN"] = binary
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "[7] done" in proc.stdout and "[8] done" in proc.stdout  # progress lines were printed
    text = out.read_text()
    for number, title in TITLES.items():
        section = text.split(f"## {number}. {title}\n", 1)[1].split("\n## ", 1)[0]
        assert re.search(r"^\| --- \|( ---: \|)+$", section, re.M), f"no table in section {number}"
        target = re.search(r"^\*\*Target:\*\* (met: |MISSED: |none set by )", section, re.M)
        assert target, f"no target line in section {number}"
    assert "## Targets missed and why" in text
    assert text.endswith(f"{MARKER}\n\nHand-written analysis: keep me.\n")
    assert re.search(r"^- Commit: [0-9a-f]{7,}( dirty)?$", text, re.M)
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["quick"] is True and raw["failures"] == {}
    scenarios = raw["scenarios"]
    assert sorted(scenarios) == [str(n) for n in TITLES]
    _calls(scenarios["1"])
    _latency(scenarios["2"])
    _throughput(scenarios["3"])
    _memory(scenarios["4"])
    _workers(scenarios["5"])
    _faults(scenarios["6"])
    _reports(scenarios["7"])
    _fleet(scenarios["8"])


def _top_floor(items: int) -> int:
    return math.ceil(items / 200) + math.ceil(items / 20)


def _calls(s):
    items = s["items"]
    crawls = {(c["dialect"], c["mode"]): c for c in s["crawls"]}
    assert len(crawls) == 8
    for crawl in crawls.values():
        assert crawl["stored"] == items and crawl["exit"] == 0
        assert crawl["floor"] <= crawl["calls"] <= crawl["floor"] * 1.01, crawl
    assert crawls["top", "full"]["calls"] == crawls["top", "full"]["floor"] == _top_floor(items)
    assert crawls["top", "incremental"]["calls"] == math.ceil(items / 200)
    assert crawls["1688", "full"]["floor"] == math.ceil(items / 20) + items
    assert s["seed_client"]["calls"] == items // 100 + 1 + items
    assert s["seed_client"]["items"] == items


def _latency(s):
    med = s["medians"]
    assert med["shopcrawl → SQLite"]["items"] == med["shopcrawl → null://"]["items"] == s["items"]
    assert med["shopcrawl → SQLite"]["calls"] == _top_floor(s["items"])
    assert med["plain Scrapy → MongoDB"]["items"] == s["items"]
    assert med["plain Scrapy → MongoDB"]["calls"] == s["items"] // 100 + 1 + s["items"]
    assert med["seed client"]["items"] == s["seed_items"]
    assert med["seed client"]["calls"] == math.ceil(s["seed_items"] / 100) + s["seed_items"]
    # 30 ms a call: a sequential client cannot beat it
    assert med["seed client"]["ms_per_item"] >= 30


def _throughput(s):
    for name, runs in s["runs"].items():
        assert [r["items"] for r in runs] == [s["items"]], name
    med = s["medians"]
    assert med["null://"]["ratio"] == 1.0
    assert all(m["items_per_s"] > 0 and m["cpu_per_1000"] > 0 for m in med.values())
    assert med["MongoDB"]["server_cpu_s"] is None or med["MongoDB"]["server_cpu_s"] >= 0


def _memory(s):
    assert len(s["sizes"]) == 3 and s["sizes"] == sorted(s["sizes"])
    for size in s["sizes"]:
        for store in ("SQLite", "null://"):
            runs = s["runs"][f"{store} {size:,}"]
            assert [r["items"] for r in runs] == [size]
            assert 20 < runs[0]["peak_rss_mib"] < 4000


def _workers(s):
    for name, runs in s["runs"].items():
        for run in runs:
            assert run["items"] == s["items"], name
            assert len(run["worker_cpu_s"]) == run["workers"]
            assert run["calls"] >= _top_floor(s["items"])
    assert s["medians"]["1 worker"]["speedup"] == 1.0


def _faults(s):
    clean = s["runs"]["top, fault-free"][0]
    faulty = s["runs"]["top, faults + bans"][0]
    assert clean["calls"] == _top_floor(s["items"]) and clean["outcomes"] == {"ok": clean["calls"]}
    for run in (clean, faulty):
        assert run["stored"] == s["items"] and run["summary"]["coverage"] == 1.0
    assert faulty["calls"] >= clean["calls"]


def _reports(s):
    assert s["observations"] >= s["items"] * s["runs"]
    assert set(s["medians"]) == {"report changes --json", "report html"}
    assert s["html_bytes"] > 0
    assert all(r["output_bytes"] > 0 for r in s["results"]["report changes --json"])


def _fleet(s):
    assert s["shops"] == len(s["sizes"]) == 4 and sum(s["sizes"].values()) == s["items"]
    assert min(s["sizes"].values()) == 100 and max(s["sizes"].values()) == 300
    assert s["listing_floor"] == sum(math.ceil(size / 200) for size in s["sizes"].values())
    first = s["first_crawl"]
    assert first["complete_runs"] == 4 and first["items"] == s["items"]
    assert first["calls"] == s["listing_floor"] + sum(math.ceil(size / 20) for size in s["sizes"].values())
    assert set(s["runs"]) == {"one shop per process", "fleet, 1 worker", "fleet, 1 worker, 2 slots"}
    for name, runs in s["runs"].items():
        for run in runs:  # every pass: one complete run per shop, all items, listing calls only
            assert run["shops"] == run["complete_runs"] == 4, name
            assert run["items"] == s["items"] and run["calls"] == s["listing_floor"], name
            assert run["processes"] == (4 if name == "one shop per process" else 1), name
            assert (run["redis_cpu_s"] is None) == (name == "one shop per process"), name
    assert s["medians"]["one shop per process"]["ratio"] == 1.0
    assert all(m["shops_per_hour"] > 0 and m["cpu_per_shop"] > 0 for m in s["medians"].values())

"""The fleet for 5 minutes: 50 sandbox shops of 200–5,000 items, each due every 60 s, 3 workers, one
schedule. Every shop gets a complete run in every interval, no run of a shop overlaps another, no
shop's last complete run grows older than 2 intervals, no 1-second window at the API goes over the QPS
limit, and a worker SIGTERMed and another SIGKILLed mid-way lose nothing.

Marked serial: it measures timing, so scripts/test.sh runs it after the rest, alone."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from shopcrawl.sandbox.local import crawl_env
from tests.test_fleet_worker import store_grants

pytestmark = pytest.mark.serial

SHOPS, INTERVAL, DURATION, QPS, WORKERS = 50, 60, 300, 150, 3


def _grants(path: Path, shops: list[dict]) -> None:
    """Each shop's own session, as `shopcrawl auth login` would have stored it (no refresh needed)."""
    store_grants(path, [s for s in shops if s["seller"].startswith("shop-")])


def _spawn(args: list[str], env: dict[str, str], tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    logging = ["-s", f"LOG_FILE={tmp_path / name}.log"] if args[0] == "worker" else []
    with open(tmp_path / f"{name}.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "shopcrawl.cli", *args, *logging],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _busiest_second(times: list[float]) -> int:
    """The most calls in any 1-second window (sliding, not aligned to whole seconds)."""
    times = sorted(times)
    worst, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        worst = max(worst, end - start + 1)
    return worst


def _status(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "shopcrawl.cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["fleet"]


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def test_fifty_shops_every_minute_for_five_minutes(sandbox_factory, tmp_path, redis_url):
    call_log = tmp_path / "calls.jsonl"
    sandbox = sandbox_factory(
        "--items",
        "10",
        "--shops",
        str(SHOPS),
        "--shop-items",
        "200-5000",
        "--seed",
        "40",
        "--qps",
        str(QPS),
        "--call-log",
        str(call_log),
    )
    shops = [s for s in sandbox.shops() if s["seller"].startswith("shop-")]
    assert (
        len(shops) == SHOPS
        and min(s["items"] for s in shops) == 200
        and max(s["items"] for s in shops) == 5000
    )
    credentials = tmp_path / "conf" / "credentials.json"
    _grants(credentials, shops)
    schedule = tmp_path / "shops.toml"
    schedule.write_text(
        f'[defaults]\napi = "top"\ninterval = {INTERVAL}\n\n'
        + "".join(f'[[shop]]\nseller = "{s["seller"]}"\n\n' for s in shops)
    )
    env = crawl_env(
        sandbox.url,
        f"sqlite:///{tmp_path / 'shop.db'}",
        {
            "REDIS_URL": redis_url,
            "SHOPCRAWL_SESSION": "",
            "SHOPCRAWL_CREDENTIALS": str(credentials),
            "SHOPCRAWL_QPS": str(QPS),
            "SHOPCRAWL_PROGRESS_INTERVAL": "0",
        },
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    started = time.monotonic()
    procs["schedule"] = _spawn(["schedule", "--file", str(schedule)], env, tmp_path, "schedule")
    for n in range(WORKERS):
        procs[f"worker-{n}"] = _spawn(["worker", "--slots", "2"], env, tmp_path, f"worker-{n}")
    worst_age: list[float] = []
    events: list[str] = []
    try:
        while (elapsed := time.monotonic() - started) < DURATION:
            for name, proc in procs.items():
                assert proc.poll() is None or name in events, f"{name} exited {proc.returncode}"
            if elapsed > 100 and "sigterm" not in events:
                procs["worker-0"].terminate()
                assert procs["worker-0"].wait(timeout=60) == 0  # its jobs handed back, writes finished
                events += ["sigterm", "worker-0"]
                procs["worker-3"] = _spawn(["worker", "--slots", "2"], env, tmp_path, "worker-3")
            if elapsed > 170 and "sigkill" not in events:
                procs["worker-1"].kill()
                procs["worker-1"].wait(timeout=10)
                events += ["sigkill", "worker-1"]
                procs["worker-4"] = _spawn(["worker", "--slots", "2"], env, tmp_path, "worker-4")
            if elapsed > 2 * INTERVAL + 10:
                ages = [s["last_complete_age"] for s in _status(env)["shops"]]
                worst_age.append(max(float("inf") if a is None else a for a in ages))
            time.sleep(2)
        procs["schedule"].terminate()
        assert procs["schedule"].wait(timeout=30) == 0
        # Let the jobs queued last finish, then stop the workers.
        deadline = time.monotonic() + 120
        while (state := _status(env))["queue_depth"] or state["running"] or state["retrying"]:
            assert time.monotonic() < deadline, state
            time.sleep(1)
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.terminate()
                assert proc.wait(timeout=60) == 0, name
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        rows = conn.execute(
            "SELECT seller_id, run_id, status, coverage, started_at, finished_at FROM runs "
            "ORDER BY started_at"
        ).fetchall()
        stored = dict(conn.execute("SELECT seller_id, COUNT(*) FROM items GROUP BY seller_id").fetchall())
    by_shop: dict[str, list[tuple]] = defaultdict(list)
    for seller, run_id, status, coverage, begin, end in rows:
        by_shop[seller].append((run_id, status, coverage, _seconds(begin), _seconds(end)))
    assert sorted(by_shop) == sorted(s["seller"] for s in shops)
    statuses = Counter(status for runs in by_shop.values() for _, status, *_ in runs)
    assert statuses.keys() == {"complete"}, statuses  # nothing lost to the SIGTERM or the SIGKILL
    for seller, runs in by_shop.items():
        assert DURATION // INTERVAL <= len(runs) <= DURATION // INTERVAL + 1, (seller, len(runs))
        for (_, _, _, _, end), (_, _, _, begin, _) in itertools.pairwise(runs):
            assert end <= begin, f"two runs of {seller} overlap"
        assert all(coverage == 1.0 for _, _, coverage, _, _ in runs)
    assert stored == {s["seller"]: s["items"] for s in shops}
    assert worst_age and max(worst_age) <= 2 * INTERVAL, max(worst_age)
    sent = [json.loads(line)["t"] for line in call_log.read_text().splitlines()]
    assert len(sent) > SHOPS * DURATION // INTERVAL  # every run's listing at least
    assert _busiest_second(sent) <= QPS
    assert sandbox.stats()["outcomes"].get("ban", 0) == 0

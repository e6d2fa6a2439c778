"""Workers outlive a Redis that dies mid-crawl: restarted with its data, restarted empty, or gone
for good. Real worker processes, a real redis-server killed with SIGKILL, a real sandbox."""

from __future__ import annotations

import sqlite3
import subprocess
import time

import pytest

from shopcrawl.sandbox.local import crawl_command, crawl_env
from tests.services import RedisProcess

ITEMS = 4000


def _workers(url, tmp_path, redis_url, count, env=None):
    store = f"sqlite:///{tmp_path / 'shop.db'}"
    full_env = crawl_env(
        url, store, {"REDIS_URL": redis_url, "SHOPCRAWL_PROGRESS_INTERVAL": "0", **(env or {})}
    )
    procs = []
    for n in range(count):
        args = crawl_command("demo", {"LOG_FILE": tmp_path / f"worker-{n}.log"})
        procs.append(
            subprocess.Popen(args, env=full_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    return procs


def _query(tmp_path, sql, *args):
    db = tmp_path / "shop.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []


def _wait_stored(tmp_path, at_least, timeout=120):
    deadline = time.monotonic() + timeout
    while (_query(tmp_path, "SELECT COUNT(*) FROM items") or [(0,)])[0][0] < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} items stored after {timeout} s"
        time.sleep(0.05)


def _finish(procs, timeout=180):
    """Exit codes and stderr of every worker, and when the last one exited."""
    deadline = time.monotonic() + timeout
    results = [p.communicate(timeout=max(1, deadline - time.monotonic())) for p in procs]
    return [p.returncode for p in procs], [err.decode() for _, err in results], time.time()


@pytest.mark.parametrize("empty", [False, True], ids=["with-its-data", "empty"])
def test_redis_killed_mid_crawl_and_restarted(sandbox_factory, tmp_path, empty):
    sandbox = sandbox_factory("--items", str(ITEMS), "--seed", "71")
    server = RedisProcess(tmp_path / "redis", appendonly=True)
    try:
        procs = _workers(sandbox.url, tmp_path, server.url, 3, {"SHOPCRAWL_QPS": "40"})
        _wait_stored(tmp_path, 600)
        server.kill()
        time.sleep(2)  # the outage itself, not a wait for readiness
        server.restart(empty=empty)
        codes, errors, ended = _finish(procs)
    finally:
        server.stop()
    logs = [(tmp_path / f"worker-{n}.log").read_text() for n in range(3)]
    assert codes == [0, 0, 0], errors
    last_write = _query(tmp_path, "SELECT MAX(last_seen) FROM items")[0][0]
    from datetime import datetime

    assert ended - datetime.fromisoformat(last_write).timestamp() < 60
    assert all(
        "Redis at redis://127.0.0.1" in log and "is back after" in log for log in logs if "unreachable" in log
    )
    assert any("unreachable" in log for log in logs)
    ((run_id, status, stored, coverage),) = _query(
        tmp_path, "SELECT run_id, status, items_stored, coverage FROM runs"
    )
    assert (status, stored, coverage) == ("complete", ITEMS, 1.0)
    assert _query(tmp_path, "SELECT COUNT(*), COUNT(DISTINCT num_iid) FROM items") == [(ITEMS, ITEMS)]
    observed = _query(tmp_path, "SELECT COUNT(*), COUNT(DISTINCT num_iid || ':' || sku_id) FROM observations")
    expected = sum(max(1, len(item.get("skus") or [])) for item in sandbox.shop())
    assert observed == [(expected, expected)]  # exactly once per (item, SKU, run)
    redo = sum("redoing its listing under the same run id" in log for log in logs)
    assert redo == (1 if empty else 0)
    summary = [line for log in logs for line in log.splitlines() if f"INFO: Run {run_id} COMPLETE" in line]
    assert len(summary) == 1 and f"{ITEMS:,} / {ITEMS:,} items accounted for" in summary[0]


def test_an_outage_longer_than_the_limit_stops_every_worker_naming_redis(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", str(ITEMS), "--seed", "73")
    server = RedisProcess(tmp_path / "redis")
    try:
        env = {"SHOPCRAWL_QPS": "40", "SHOPCRAWL_REDIS_OUTAGE_SECONDS": "3"}
        procs = _workers(sandbox.url, tmp_path, server.url, 2, env)
        _wait_stored(tmp_path, 400)
        server.kill()
        killed = time.monotonic()
        codes, errors, _ = _finish(procs, timeout=90)
    finally:
        server.stop()
    assert time.monotonic() - killed < 60
    assert codes == [1, 1], errors
    for err in errors:
        (line,) = [x for x in err.splitlines() if x.startswith("shopcrawl stopped:")]
        assert "Redis at redis://127.0.0.1" in line and "unreachable for 3 s" in line
        assert "SHOPCRAWL_REDIS_OUTAGE_SECONDS" in line
    assert _query(tmp_path, "SELECT status FROM runs") != [("complete",)]

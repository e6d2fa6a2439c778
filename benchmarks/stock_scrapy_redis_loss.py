"""Items lost when one worker is SIGKILLed: stock scrapy-redis scheduling against shopcrawl's.

The scenario of tests/test_distributed.py (test_a_killed_worker_loses_nothing_...): a 10,000-item
sandbox shop (seed 31), 3 workers sharing one Redis (SHOPCRAWL_QPS=90, store batches of 200); once
2,500 items are stored (a quarter of a smaller shop), one running worker is SIGKILLed and a fresh
one started in its place; then every worker runs to its end. Run twice, each with a fresh sandbox,
an emptied Redis and a new store:

- stock: scrapy-redis's own scheduler, dupefilter and priority queue (SCHEDULER_PERSIST on), which
  delete a request from Redis when a worker pops it, so the killed worker's in-flight requests are gone;
- shopcrawl: the project's scheduler (leases, put back when a worker stops heartbeating).

Prints the items stored and lost by each. A measurement, not a test: the stock figure depends on
how much work the killed worker held at that moment.

Usage: .venv/bin/python benchmarks/stock_scrapy_redis_loss.py [--items 10000] [--runs 1]
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from qps_window import _stop, _wait_line, kill_all, machine_facts, start_redis, wait_all

from shopcrawl.sandbox.local import crawl_command, crawl_env

SECRET, SESSION = "bench-secret", "bench-session"
STOCK = {
    "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
    "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
    "SCHEDULER_PERSIST": "True",
    "SCHEDULER_QUEUE_CLASS": "scrapy_redis.queue.PriorityQueue",
}


def stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return int(conn.execute("SELECT COUNT(DISTINCT num_iid) FROM items").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def one_run(
    workdir: Path, redis_url: str, items: int, extra: dict[str, str], timeout: float
) -> dict[str, object]:
    workdir.mkdir(parents=True)
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    sandbox = subprocess.Popen(
        [
            *(sys.executable, "-m", "shopcrawl.sandbox", "--host", "127.0.0.1", "--port", "0"),
            *("--items", str(items), "--seed", "31", "--app-secret", SECRET, "--session", SESSION),
            *("--log-level", "WARNING"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    db = workdir / "shop.db"
    procs: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        url = _wait_line(sandbox, None, 30)
        assert url and url.endswith("/router/rest"), url
        overrides = {"REDIS_URL": redis_url, "SHOPCRAWL_APP_SECRET": SECRET, "SHOPCRAWL_SESSION": SESSION}
        env = crawl_env(url, f"sqlite:///{db}", overrides)
        settings = {"SHOPCRAWL_QPS": "90", "SHOPCRAWL_STORE_BATCH": "200", **extra}

        def worker() -> subprocess.Popen[bytes]:
            log = workdir / f"worker-{len(procs)}.log"
            args = crawl_command("demo", {"LOG_FILE": log, **settings})
            return subprocess.Popen(args, env=env, cwd=workdir, stdout=subprocess.DEVNULL)

        for _ in range(3):
            procs.append(worker())
        while stored(db) < min(2500, items // 4):
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"too few items stored after {timeout} s")
            time.sleep(0.05)
        victim = next((p for p in procs if p.poll() is None), None)  # stock workers may have quit
        if victim is not None:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
        procs.append(worker())
        codes = wait_all(procs, started + timeout)
    finally:
        kill_all(procs)
        _stop(sandbox)
    kept = stored(db)
    return {"stored": kept, "lost": items - kept, "exit": codes, "seconds": time.monotonic() - started}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300, help="seconds a crawl may take")
    args = parser.parse_args()
    print(*machine_facts(), sep="\n")
    kill_at = min(2500, args.items // 4)
    print(f"{args.items} items, 3 workers, one SIGKILLed once {kill_at} items are stored, a new one started")
    print(f"{'scheduler':>10} {'run':>4} {'stored':>7} {'lost':>6} {'exit codes':>14} {'seconds':>8}")
    with tempfile.TemporaryDirectory(prefix="scrapy-redis-loss-") as tmp:
        server, redis_url = start_redis(Path(tmp) / "redis")
        try:
            for name, extra in (("stock", STOCK), ("shopcrawl", {})):
                for run in range(args.runs):
                    result = one_run(Path(tmp) / f"{name}-{run}", redis_url, args.items, extra, args.timeout)
                    codes = ",".join("-" if c is None else str(c) for c in result["exit"])  # type: ignore[attr-defined]
                    print(
                        f"{name:>10} {run + 1:>4} {result['stored']:>7} {result['lost']:>6} {codes:>14} "
                        f"{result['seconds']:>8.1f}",
                        flush=True,
                    )
        finally:
            _stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shared QPS limit as the API sees it: the busiest 1-second window of arrivals at the sandbox.

Runs N distributed crawls (default 10) of a sandbox shop (default 4,000 items, seed 37) with W
workers (default 4) sharing one Redis, at ``SHOPCRAWL_QPS=50`` against ``--qps 50 --call-log``,
with the DEFAULT store batch (``SHOPCRAWL_STORE_BATCH`` unset). Each run gets a fresh sandbox and an
emptied Redis (a redis-server this script starts on loopback, on a random free port). Per run and
overall it reports:

- calls: API calls that reached the sandbox (220 for 4,000 items when nothing is banned);
- bans: calls answered with code 7 (any ban is a burst above 50/s that reached the API);
- worst: the busiest sliding 1-second window of arrival times (``t`` in the call log), the
  figure the limit is about: it must stay <= 50;
- util: (calls - 1) / (span * 50), span = last arrival - first arrival, as in
  tests/test_distributed.py: how much of the limit the crawl used.

Usage: .venv/bin/python benchmarks/qps_window.py [--runs 10] [--workers 4] [--workers 1,2,4]
       [--items 4000] [--store-batch N (default: unset, i.e. 1000)] [--timeout 240]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from shopcrawl.sandbox.local import crawl_command, crawl_env

QPS = 50
SECRET, SESSION = "bench-secret", "bench-session"


def busiest_window(times: list[float], width: float = 1.0) -> int:
    """Most arrivals in any half-open window [t, t + width) (sorted ``times``)."""
    best, j = 0, 0
    for i, t in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


def _wait_line(process: subprocess.Popen[bytes], marker: bytes | None, timeout: float) -> str | None:
    """The first stdout line (marker None), or the line holding ``marker``; None if it exited."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            lines = buffer.split(b"\n")
            for line in lines[:-1]:
                if marker is None or marker in line:
                    return line.decode(errors="replace").strip()
            buffer = lines[-1]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {marker!r} line within {timeout} s")
            if not selector.select(left):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                return None
            buffer += chunk


def wait_all(procs: list[subprocess.Popen[bytes]], deadline: float) -> list[int | None]:
    """Each process's exit code, None for one still running at ``deadline`` (monotonic)."""
    codes: list[int | None] = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            codes.append(None)
    return codes


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """redis-server on a random loopback port; another port if that one is taken (redis-server exits
    when it cannot bind), so no port is picked by binding and releasing it first."""
    binary = os.environ.get("SHOPCRAWL_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server on PATH (apt-get install redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random()
    for _ in range(20):
        port = rng.randrange(20000, 60000)
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(workdir), "--protected-mode", "yes", "--logfile", str(workdir / "redis.log")]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with redis.Redis.from_url(url, socket_timeout=1) as client:
                    if client.ping() and process.poll() is None:
                        return process, url
            except redis.ConnectionError:
                time.sleep(0.05)
        _stop(process)
    raise SystemExit("redis-server did not start on any of 20 ports")


def one_run(
    workdir: Path, redis_url: str, *, workers: int, items: int, store_batch: int | None, timeout: float
) -> dict[str, object]:
    workdir.mkdir(parents=True)
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    log = workdir / "calls.jsonl"
    sandbox = subprocess.Popen(
        [
            *(sys.executable, "-m", "shopcrawl.sandbox", "--host", "127.0.0.1", "--port", "0"),
            *("--items", str(items), "--seed", "37", "--app-secret", SECRET, "--session", SESSION),
            *("--qps", str(QPS), "--call-log", str(log), "--log-level", "WARNING"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = _wait_line(sandbox, None, 30)
        assert url and url.endswith("/router/rest"), url
        overrides = {"REDIS_URL": redis_url, "SHOPCRAWL_APP_SECRET": SECRET, "SHOPCRAWL_SESSION": SESSION}
        overrides["SHOPCRAWL_QPS"] = str(QPS)
        if store_batch is not None:
            overrides["SHOPCRAWL_STORE_BATCH"] = str(store_batch)
        env = crawl_env(url, f"sqlite:///{workdir / 'shop.db'}", overrides)
        started = time.monotonic()
        for n in range(workers):
            args = crawl_command("demo", {"LOG_FILE": workdir / f"worker-{n}.log"})
            procs.append(subprocess.Popen(args, env=env, cwd=workdir, stdout=subprocess.DEVNULL))
        codes = wait_all(procs, started + timeout)
        seconds = time.monotonic() - started
    finally:
        kill_all(procs)
        _stop(sandbox)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    times = sorted(c["t"] for c in calls)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "exit": codes,
        "calls": len(calls),
        "bans": sum(1 for c in calls if c["outcome"] == "ban"),
        "worst": busiest_window(times),
        "util": (len(times) - 1) / (span * QPS) if span else 0.0,
        "seconds": seconds,
    }


def machine_facts() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    redis_version = subprocess.run(
        [shutil.which("redis-server") or "redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()
    load = os.getloadavg()
    return [
        f"machine: {os.cpu_count()} cores ({cpu}), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"python {platform.python_version()}, {' '.join(redis_version[:3])}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", default="4", help="worker count, or a list: 1,2,4")
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--store-batch", type=int, default=None, help="default: unset (1000)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds a run may take")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    floor = -(-args.items // 200) + -(-args.items // 20)
    print(*machine_facts(), sep="\n")
    batch = args.store_batch if args.store_batch is not None else "default (1000)"
    print(f"{args.items} items (floor {floor} calls), SHOPCRAWL_QPS={QPS}, sandbox --qps {QPS}")
    print(f"store batch: {batch}")
    print("limit: no 1-second window at the sandbox may hold more than 50 calls; bans must be 0")
    failed = False
    with tempfile.TemporaryDirectory(prefix="qps-window-") as tmp:
        server, redis_url = start_redis(Path(tmp) / "redis")
        try:
            for workers in counts:
                print(f"\n{workers} worker(s)")
                header = ("run", 4), ("exit", 12), ("calls", 6), ("bans", 5), ("worst", 6), ("util", 6)
                print(*(f"{name:>{width}}" for name, width in header), f"{'seconds':>8}")
                results = []
                for run in range(args.runs):
                    result = one_run(
                        Path(tmp) / f"w{workers}-r{run}",
                        redis_url,
                        workers=workers,
                        items=args.items,
                        store_batch=args.store_batch,
                        timeout=args.timeout,
                    )
                    results.append(result)
                    codes = ",".join("-" if c is None else str(c) for c in result["exit"])  # type: ignore[attr-defined]
                    print(
                        f"{run + 1:>4} {codes:>12} {result['calls']:>6} {result['bans']:>5} "
                        f"{result['worst']:>6} {result['util']:>6.3f} {result['seconds']:>8.1f}",
                        flush=True,
                    )
                worst = max(int(r["worst"]) for r in results)  # type: ignore[call-overload]
                bans = sum(int(r["bans"]) for r in results)  # type: ignore[call-overload]
                over = sum(1 for r in results if int(r["worst"]) > QPS)  # type: ignore[call-overload]
                utils = [float(r["util"]) for r in results]  # type: ignore[arg-type]
                bad_exit = sum(1 for r in results if r["exit"] != [0] * workers)
                print(
                    f"overall ({workers} workers, {len(results)} runs): worst window {worst} "
                    f"(limit {QPS}), runs over the limit {over}, banned calls {bans}, "
                    f"utilisation min {min(utils):.3f} median {statistics.median(utils):.3f}, "
                    f"runs with a non-zero exit {bad_exit}"
                )
                failed = failed or worst > QPS or bans > 0 or bad_exit > 0
        finally:
            _stop(server)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""How many 200-item listing calls per second the sandbox serves.

Usage: ``python benchmarks/sandbox_throughput.py [--items 25000] [--seconds 10] [--concurrency 16]``

Starts ``python -m shopcrawl.sandbox`` on a loopback port, pre-signs a pool of
``taobao.items.onsale.get`` requests (page_size 200, several orders and modified windows; signing is
kept out of the timed loop), drives them with aiohttp over keep-alive connections, and prints the
wall-clock rate and the rate per second of sandbox CPU time (Linux ``/proc``), which is the number
that says whether one sandbox core keeps up. ``--cold`` measures a first crawl: the per-item JSON
cache never hits (only the per-field fragments, built on first use, are reused).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import urllib.parse
from datetime import datetime, timedelta

import aiohttp

from shopcrawl.platforms import top

FIELDS = "num_iid,title,price,num,modified,sold_quantity,approve_status,list_time"


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            parts = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def request_pool(items: int, cold: bool) -> list[bytes]:
    now = datetime.now(top.GMT8)
    names = FIELDS.split(",")
    pages = max(1, min(100, items // 200))
    pool = []
    for page_no in range(1, pages + 1):
        for order_by, window in (
            ("list_time:desc", None),
            ("modified:asc", None),
            ("modified:asc", ("2026-06-01 00:00:00", "2026-09-30 23:59:59")),
        ):
            fields = FIELDS
            if cold:  # a new field order is a new cache shape: every item is serialized afresh
                shuffled = names[:]
                random.Random(len(pool)).shuffle(shuffled)
                fields = ",".join(shuffled)
            business = {"method": top.LISTING_METHOD, "fields": fields, "order_by": order_by}
            business.update(page_no=str(page_no), page_size="200")
            if window:
                business.update(start_modified=window[0], end_modified=window[1], page_no="1")
            params = top.signed_params(
                business,
                app_key="sandbox-app-key",
                secret="sandbox-app-secret",
                session="sandbox-session",
                sign_method="hmac-sha256",
                now=now + timedelta(seconds=len(pool) % 60),
            )
            pool.append(urllib.parse.urlencode(params).encode())
    return pool


async def drive(url: str, pool: list[bytes], seconds: float, concurrency: int) -> tuple[int, int]:
    headers = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}
    done = errors = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(offset: int) -> None:
            nonlocal done, errors
            k = offset
            while time.monotonic() < deadline:
                async with session.post(url, data=pool[k % len(pool)], headers=headers) as response:
                    body = await response.read()
                if response.status != 200 or body.startswith(b'{"error_response"'):
                    errors += 1
                done += 1
                k += concurrency

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=25000, help="items in the sandbox shop")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the timed run")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="vary the fields of every request so whole-item JSON is never reused (a first crawl)",
    )
    args = parser.parse_args()
    process = subprocess.Popen(
        [sys.executable, "-m", "shopcrawl.sandbox", "--port", "0", "--items", str(args.items)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # the readiness line (the child exits on error)
        if not url:
            raise SystemExit("the sandbox did not start")
        pool = request_pool(args.items, args.cold)
        asyncio.run(drive(url, pool, 1.0, args.concurrency))  # warm the item JSON cache
        cpu_before = cpu_seconds(process.pid)
        started = time.monotonic()
        done, errors = asyncio.run(drive(url, pool, args.seconds, args.concurrency))
        elapsed = time.monotonic() - started
        cpu_after = cpu_seconds(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"{done} calls in {elapsed:.1f} s: {done / elapsed:,.0f} calls/s wall ({errors} errors)")
    if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
        used = cpu_after - cpu_before
        print(f"sandbox CPU {used:.1f} s: {done / used:,.0f} calls per sandbox CPU second")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

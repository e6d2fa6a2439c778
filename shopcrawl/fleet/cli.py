"""``shopcrawl worker``, ``shopcrawl enqueue`` and ``shopcrawl schedule``: the fleet's commands."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from shopcrawl.config import ConfigError
from shopcrawl.platforms import APIS, PLATFORMS

EXIT_FAILED, EXIT_USAGE = 1, 2


def _server(args: argparse.Namespace) -> Any:
    import redis

    from shopcrawl.stores import redact_uri

    if not args.redis_url:
        raise ConfigError("set REDIS_URL or pass --redis-url: the fleet's queue lives in Redis")
    server = redis.Redis.from_url(args.redis_url, socket_connect_timeout=5, health_check_interval=30)
    try:
        server.ping()
    except redis.RedisError as exc:
        raise ConfigError(f"cannot reach Redis at {redact_uri(args.redis_url)}: {exc}") from None
    return server


def _worker(args: argparse.Namespace) -> int:
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "shopcrawl.settings")
    from scrapy.utils.project import get_project_settings

    from shopcrawl.config import job_backoff, job_retries
    from shopcrawl.fleet.worker import FleetWorker

    server = _server(args)
    settings = get_project_settings()
    settings.set("REDIS_URL", args.redis_url, priority="cmdline")
    for pair in args.set or ():
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"-s takes NAME=VALUE, got {pair!r}")
        settings.set(name, value, priority="cmdline")
    worker = FleetWorker(
        settings,
        server,
        slots=args.slots,
        retries=job_retries(settings),
        backoff=job_backoff(settings),
        max_jobs=args.max_jobs,
    )
    return worker.run()


def _enqueue(args: argparse.Namespace) -> int:
    from shopcrawl.config import platform_for
    from shopcrawl.fleet.jobs import Job, JobQueue, key

    job = Job(args.api, platform_for(args.api, args.platform), args.seller.strip(), args.mode)
    if not job.seller:
        raise ConfigError("--seller must not be empty")
    server = _server(args)

    unparked = server.hdel(key("parked"), job.shop)
    if JobQueue(server).enqueue(job, front=args.front):
        note = " (it was parked: unparked)" if unparked else ""
        print(f"queued {job.shop} ({job.mode}){note}")
        return 0
    print(f"not queued: {job.shop} already has a job queued, waiting for a retry, or running")
    return EXIT_FAILED


def _schedule(args: argparse.Namespace) -> int:
    from shopcrawl.fleet.schedule import Scheduler, load

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shops = load(Path(args.file))
    server = _server(args)
    scheduler = Scheduler(server)
    scheduler.sync(shops)
    if args.once:
        queued = scheduler.tick()
        print(f"queued {len(queued)} of {len(shops)} shops")
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"schedule: {len(shops)} shops; checking every {args.tick:g} s", flush=True)
    mtime = Path(args.file).stat().st_mtime
    while not stop.is_set():
        try:
            if Path(args.file).stat().st_mtime != mtime:  # edited: re-read it (a bad edit keeps the old)
                mtime = Path(args.file).stat().st_mtime
                shops = load(Path(args.file))
                scheduler.sync(shops)
                logging.getLogger(__name__).info("Schedule: re-read %s (%d shops)", args.file, len(shops))
            scheduler.tick()
        except ConfigError as exc:
            print(f"shopcrawl schedule: {exc}; keeping the previous schedule", file=sys.stderr)
        except Exception as exc:  # Redis away: keep trying, a tick missed is made up by the next
            print(f"shopcrawl schedule: {type(exc).__name__}: {exc}", file=sys.stderr)
        stop.wait(args.tick)
    return 0


def _run(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result: int = func(args)
            return result
        except ConfigError as exc:
            print(f"shopcrawl {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return run


def add_parser(sub: Any) -> None:
    redis_help = "Redis holding the job queue (default: $REDIS_URL)"
    worker = sub.add_parser("worker", help="a long-running worker: take shop jobs from Redis and crawl them")
    worker.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help=redis_help)
    worker.add_argument(
        "--slots", type=int, default=1, help="jobs crawled at once in this process (default 1)"
    )
    worker.add_argument(
        "--max-jobs", type=int, default=0, help="stop after this many jobs (default 0: never)"
    )
    worker.add_argument("-s", "--set", action="append", metavar="NAME=VALUE", help="a setting, as for scrapy")
    worker.set_defaults(func=_run(_worker))
    enqueue = sub.add_parser("enqueue", help="put one shop job on the fleet's queue")
    enqueue.add_argument("--seller", required=True, help="the seller (or the gateway's shop id)")
    enqueue.add_argument("--api", choices=APIS, default="top", help="the API (default top)")
    enqueue.add_argument("--platform", choices=PLATFORMS, default="taobao", help="the gateway's platform")
    enqueue.add_argument("--mode", choices=("incremental", "full"), default="incremental", help="crawl mode")
    enqueue.add_argument("--front", action="store_true", help="at the front of the queue")
    enqueue.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help=redis_help)
    enqueue.set_defaults(func=_run(_enqueue))
    schedule = sub.add_parser("schedule", help="queue each shop of a schedule file when it is due")
    schedule.add_argument("--file", required=True, help="the schedule (TOML: [defaults] and [[shop]] tables)")
    schedule.add_argument("--once", action="store_true", help="queue what is due now and exit (for cron)")
    schedule.add_argument("--tick", type=float, default=1.0, help="seconds between checks (default 1)")
    schedule.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help=redis_help)
    schedule.set_defaults(func=_run(_schedule))

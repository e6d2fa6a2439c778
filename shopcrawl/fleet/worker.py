"""``shopcrawl worker``: a long-running process that takes shop jobs from Redis and crawls them.

Each of its ``--slots`` loops blocks on the job queue, crawls the job's shop with a fresh Scrapy crawler
in the process's one reactor (starting the shop's run, or joining it when another worker already
started it), records the outcome, and takes the next job. A crawler lives only while its shop has work,
so no idle engine is ever held. Meanwhile the worker heartbeats, moves retries whose time has come to
the queue, and puts back the jobs of workers whose heartbeat expired (SIGKILLed, or their machine gone).

Outcomes: a complete or incomplete run is done (incomplete is not a failure: the next interval crawls
the shop again); a run that failed (a fatal API error, a crash) is retried after
``SHOPCRAWL_JOB_BACKOFF`` × 2^attempt seconds, up to ``SHOPCRAWL_JOB_RETRIES`` times, then parked with
its reason; a missing or refused authorisation is parked at once (only a login helps). SIGTERM or
SIGINT: the crawls in progress finish their writes and hand their leases back (as ``scrapy crawl``
does), their jobs go back to the front of the queue, and the worker exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

import redis
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.settings import Settings
from twisted.internet import defer, task, threads

from shopcrawl.auth.crawl import prepare
from shopcrawl.auth.grants import CredentialsError
from shopcrawl.auth.keeper import LoginNeeded
from shopcrawl.config import ConfigError, ShopcrawlConfig
from shopcrawl.fleet.jobs import Job, JobQueue
from shopcrawl.runs import FATAL_STAT, SHUTDOWN_REASON, STATUS_STAT
from shopcrawl.spiders.shop import ShopSpider

logger = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 5.0
TAKE_TIMEOUT_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 3600.0
SETTLE_WAIT_SECONDS = 120.0


class _Process(CrawlerProcess):
    """A CrawlerProcess whose first SIGTERM/SIGINT stops the crawls and lets the job loops hand their
    jobs back before the reactor stops (the stock one stops the reactor as soon as the crawls end)."""

    worker: FleetWorker

    @defer.inlineCallbacks
    def _graceful_stop_reactor(self) -> Any:
        self.worker.stopping = True
        yield self._stop_dfd()


class FleetWorker:
    def __init__(
        self,
        settings: Settings,
        server: redis.Redis,
        *,
        slots: int = 1,
        retries: int = 3,
        backoff: float = 30.0,
        max_jobs: int = 0,
    ) -> None:
        self.settings = settings
        self.server = server
        self.queue = JobQueue(server)
        self.slots = slots
        self.retries = retries
        self.backoff = backoff
        self.max_jobs = max_jobs  # 0: no limit (tests and benchmarks stop after N jobs)
        self.stopping = False
        self.jobs_done = 0
        self._loops_left = slots

    @property
    def name(self) -> str:
        return self.queue.worker

    def run(self) -> int:
        from scrapy.utils.reactor import install_reactor

        # The settings' reactor, before anything imports the default one (a crawler would install it
        # only when the first job comes, and the loops here need the reactor before that).
        install_reactor(self.settings["TWISTED_REACTOR"], self.settings["ASYNCIO_EVENT_LOOP"])
        from twisted.internet import reactor

        process = _Process(self.settings)
        process._initialized_reactor = True

        process.worker = self
        self.process = process
        self._keeper = task.LoopingCall(self._housekeeping)
        reactor.callWhenRunning(self._start)
        process.start(stop_after_crawl=False)
        return 0

    def _start(self) -> None:
        self.queue.beat()
        self._keeper.start(HOUSEKEEPING_SECONDS, now=True)
        logger.info("Worker %s takes jobs (%d at a time)", self.name, self.slots)
        for slot in range(self.slots):
            self._loop(slot).addErrback(self._crashed)

    def _crashed(self, failure: Any) -> None:
        logger.error("Worker %s: a job loop crashed: %s", self.name, failure.getTraceback())
        self.stopping = True
        self._loop_ended()

    def _housekeeping(self) -> defer.Deferred[Any]:
        def work() -> None:
            try:
                self.queue.beat()
                _, reaped = self.queue.housekeeping()
                if reaped:
                    logger.warning("Put back %d jobs of workers that stopped heartbeating", reaped)
            except redis.RedisError as exc:
                logger.warning("Worker %s: Redis unavailable for housekeeping: %s", self.name, exc)

        return threads.deferToThread(work)

    @defer.inlineCallbacks
    def _loop(self, slot: int) -> Any:
        while not self.stopping and not (self.max_jobs and self.jobs_done >= self.max_jobs):
            try:
                job = yield threads.deferToThread(self.queue.take, TAKE_TIMEOUT_SECONDS)
            except redis.RedisError as exc:
                logger.warning("Worker %s: cannot take a job (%s); trying again", self.name, exc)
                yield task.deferLater(_reactor(), 1.0, lambda: None)
                continue
            if job is None:
                continue
            if self.stopping:  # taken as the signal arrived: straight back
                yield threads.deferToThread(self.queue.finish, job, "back")
                break
            self.jobs_done += 1
            yield self._run_job(job)
        self._loop_ended()

    def _loop_ended(self) -> None:
        self._loops_left -= 1
        if self._loops_left > 0:
            return
        if self._keeper.running:
            self._keeper.stop()
        with contextlib.suppress(redis.RedisError):
            self.queue.leave()
        logger.info("Worker %s stops after %d jobs", self.name, self.jobs_done)
        self.process._stop_reactor()

    @defer.inlineCallbacks
    def _run_job(self, job: Job) -> Any:
        started = time.time()
        logger.info(
            "Job %s: %s %s seller %s (%s, attempt %d)",
            job.id,
            job.api,
            job.platform,
            job.seller,
            job.mode,
            job.attempt + 1,
        )
        try:
            config = ShopcrawlConfig.from_settings(self.settings, api=job.api, platform=job.platform)
            yield threads.deferToThread(prepare, self.settings, config, job.seller)
        except (LoginNeeded, CredentialsError, ConfigError) as exc:
            yield self._settle(job, "park", f"{type(exc).__name__}: {exc}", started)
            return
        except Exception as exc:  # the network to the token endpoint, Redis, ...
            yield self._settle(job, "failed", f"{type(exc).__name__}: {exc}", started)
            return
        crawler: Crawler = self.process.create_crawler(ShopSpider)
        args = {"seller_id": job.seller, "api": job.api, "platform": job.platform, "mode": job.mode}
        try:
            yield self.process.crawl(crawler, **args)
        except Exception as exc:
            yield self._settle(job, "failed", f"the crawl did not start: {exc}", started)
            return
        stats = crawler.stats.get_stats() if crawler.stats else {}
        fatal = stats.get(FATAL_STAT)
        if fatal:
            yield self._settle(job, "failed", str(fatal), started, stats)
        elif self.stopping and stats.get("finish_reason") == SHUTDOWN_REASON:
            yield self._settle(job, "back", "", started, stats)
        else:
            yield self._settle(job, "done", "", started, stats)

    def _settle(
        self, job: Job, outcome: str, reason: str, started: float, stats: dict[str, Any] | None = None
    ) -> defer.Deferred[Any]:
        stats = stats or {}
        now = time.time()
        status = str(stats.get(STATUS_STAT) or "")  # set by the worker that closed the run
        run_id = str(stats.get("shopcrawl/run_id") or "")
        last: dict[str, Any] = {}  # fields of the shop's last-run record this outcome changes
        if status:
            last = {
                "run_id": run_id,
                "status": status,
                "finished_at": now,
                "seconds": round(now - started, 1),
                "reason": reason,
            }
            if status == "complete":
                last.update(last_complete_run=run_id, last_complete_at=now)
        kind = outcome
        parked: dict[str, Any] | None = None
        at = 0.0
        if outcome == "failed":
            attempt = job.attempt + 1
            failed = replace(job, attempt=attempt, last_error=reason[:500])
            if attempt > self.retries:
                kind = "park"
                parked = {"job": failed.__dict__, "reason": reason[:500], "at": now, "attempts": attempt}
                logger.error(
                    "Job %s for seller %s parked after %d attempts: %s", job.id, job.seller, attempt, reason
                )
            else:
                kind = "retry"
                delay = min(MAX_BACKOFF_SECONDS, self.backoff * 2 ** (attempt - 1))
                at = now + delay
                logger.warning(
                    "Job %s for seller %s failed (%s); retry %d of %d in %.0f s",
                    job.id,
                    job.seller,
                    reason,
                    attempt,
                    self.retries,
                    delay,
                )
                job = failed
            last.update(failed_at=now, error=reason[:500])
        elif outcome == "park":
            parked = {"job": job.__dict__, "reason": reason[:500], "at": now, "attempts": job.attempt}
            logger.error("Job %s for seller %s parked: %s", job.id, job.seller, reason)
        elif outcome == "back":
            logger.info("Job %s for seller %s handed back to the queue", job.id, job.seller)
        else:
            logger.info(
                "Job %s for seller %s done: run %s %s in %.1f s",
                job.id,
                job.seller,
                run_id or "(closed by another worker)",
                status or "",
                now - started,
            )
        return threads.deferToThread(self._record, job, kind, last, at, parked)

    def _record(
        self, job: Job, kind: str, last: dict[str, Any], at: float, parked: dict[str, Any] | None
    ) -> None:
        """The job's outcome into Redis (in a thread), waiting out an outage of up to SETTLE_WAIT_SECONDS:
        a job whose outcome is not recorded stays on this worker's list and would run again. ``last``
        holds the fields of the shop's last-run record that change; the others are kept."""
        deadline = time.monotonic() + SETTLE_WAIT_SECONDS
        while True:
            try:
                merged = {**self.queue.last(job.shop), **last} if last else None
                self.queue.finish(job, kind, last=merged, at=at, parked=parked)
                return
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    raise
                logger.warning("Worker %s: cannot record job %s yet (%s); retrying", self.name, job.id, exc)
                time.sleep(1.0)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor

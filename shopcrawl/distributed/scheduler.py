"""scrapy-redis's scheduler with leases, run-scoped keys and JSON payloads.

Differences from the stock ``scrapy_redis.scheduler.Scheduler`` (whose defects this fixes):

- a popped request is *leased* to this worker, not deleted; a dead worker's leases are requeued;
- the dupefilter check and the push are one atomic step, so a worker killed between them cannot
  mark a request as seen without queueing it;
- keys belong to one run of one seller (``keys.RunKeys``: one Redis Cluster hash slot) and expire,
  an hour after the run closed at the latest;
- payloads are JSON (``shopcrawl.distributed.serializer``), never pickle; a payload that does not
  decode is refused with a log line and dropped, and nothing in it runs.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Self

import redis
from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import Base
from scrapy_redis.scheduler import Scheduler

from shopcrawl.distributed import keys as K
from shopcrawl.distributed import lua, serializer
from shopcrawl.distributed.link import RedisLink
from shopcrawl.distributed.run import RunCoordinator

logger = logging.getLogger(__name__)

LEASE_META = "_lease"
MAX_REFUSED_IN_A_ROW = 1000


class LeasedQueue(Base):
    """A priority queue (FIFO within a priority) whose pops are leases."""

    def __init__(self, server: redis.Redis, spider: Spider, coordinator: RunCoordinator) -> None:
        # scrapy-redis %-formats the key (``%(spider)s``); a seller's tag may hold a percent-encoding.
        key = coordinator.keys.queue.replace("%", "%%")
        super().__init__(server, spider, key, serializer=serializer)  # type: ignore[no-untyped-call]
        self.coordinator = coordinator
        self._push = server.register_script(lua.PUSH)
        self._pop = server.register_script(lua.POP)

    def __len__(self) -> int:
        return int(self.server.zcard(self.key))

    def push(self, request: Request, fingerprint: str = "") -> bool:
        keys = self.coordinator.keys
        release = str(request.meta.pop(LEASE_META, ""))
        payload = serializer.encode(request, self.spider)
        queued = self._push(
            keys=[self.key, keys.dupefilter, keys.seq, keys.leases(self.coordinator.worker), keys.closed],
            args=[fingerprint, request.priority, secrets.token_hex(8), payload, release, K.RUN_TTL_SECONDS],
        )
        return bool(queued)

    def pop(self, timeout: int = 0) -> Request | None:
        lease_key = self.coordinator.keys.leases(self.coordinator.worker)
        for _ in range(MAX_REFUSED_IN_A_ROW):
            member = self._pop(
                keys=[self.key, lease_key, self.coordinator.keys.closed], args=[K.RUN_TTL_SECONDS]
            )
            if not member:
                return None
            lease = member.decode("utf-8", "replace") if isinstance(member, bytes) else str(member)
            try:
                request = serializer.decode(member.split(b"|", 1)[1], self.spider)
            except (serializer.PayloadRefused, IndexError) as exc:
                logger.error("Refused a queued payload and dropped it (nothing in it was run): %s", exc)
                self.server.hdel(lease_key, member)
                continue
            request.meta[LEASE_META] = lease
            return request
        return None


class LeasedScheduler(Scheduler):
    def __init__(self, server: redis.Redis, crawler: Crawler, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)  # type: ignore[no-untyped-call]
        self.crawler = crawler
        self.coordinator: RunCoordinator | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        link = RedisLink.for_crawler(crawler)
        assert link is not None, "the leased scheduler needs REDIS_URL"
        scheduler = cls(link.sync, crawler, persist=True)
        scheduler.stats = crawler.stats
        return scheduler

    def open(self, spider: Any) -> None:
        self.spider = spider
        coordinator = RunCoordinator(self.server, spider.seller_id)
        run_id, started_at = coordinator.join(spider.run_id, spider.started_at.isoformat())
        spider.adopt_run(run_id, started_at, coordinator)
        self.coordinator = coordinator
        self.crawler._shopcrawl_run = coordinator  # type: ignore[attr-defined]
        self.queue = LeasedQueue(self.server, spider, coordinator)
        # scrapy-redis's dupefilter, run-scoped; its set is written by the atomic push script.
        self.df = RFPDupeFilter(self.server, key=coordinator.keys.dupefilter)  # type: ignore[no-untyped-call]
        if len(self.queue):
            logger.info("Joined run %s with %d requests queued", run_id, len(self.queue))

    def close(self, reason: str) -> None:
        if self.coordinator is not None:
            self.coordinator.leave()

    def enqueue_request(self, request: Request) -> bool:
        fingerprint = "" if request.dont_filter else self.df.request_fingerprint(request)
        pushed = self.queue.push(request, fingerprint)
        coordinator = getattr(self.crawler, "_shopcrawl_run", None)
        if coordinator is not None:
            coordinator.request_scheduled(request)  # queued or a duplicate: its parent lease may go
        if not pushed:
            self.df.log(request, self.spider)
            if self.stats:
                self.stats.inc_value("dupefilter/filtered")
            return False
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self) -> Request | None:
        request: Request | None = self.queue.pop()
        if request is not None and self.stats:
            self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def has_pending_requests(self) -> bool:
        return len(self.queue) > 0

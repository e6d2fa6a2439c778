"""The job queue in Redis: one job per shop at a time, taken reliably, retried with backoff, parked
after ``SHOPCRAWL_JOB_RETRIES`` failures.

Keys (all under the ``{fleet}`` tag, so every script touches one slot):

- ``jobs``: hash shop key -> the shop's pending job (queued, waiting for a retry, or running). While a
  shop has one, neither the schedule nor ``enqueue`` adds another.
- ``queue``: list of shop keys ready to run; a worker moves one to its own ``taken:<worker>`` list with
  ``BLMOVE``, so a job is never lost between the queue and a worker that dies.
- ``delayed``: zset shop key -> the time a failed job may run again.
- ``workers``, ``hb:<worker>``: the workers and their heartbeats; a worker whose heartbeat expired has its
  taken jobs put back at the front of the queue by any other worker.
- ``last``: hash shop key -> the shop's last finished run and its last complete run.
- ``parked``: hash shop key -> a job that failed too often, with its reason.
- ``shops``, ``due``: the schedule (see :mod:`shopcrawl.fleet.schedule`).

A shop key is ``api|platform|seller``. Nothing secret is stored: a job names a shop, never a credential.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from shopcrawl.distributed import keys as K

ROOT = K.FLEET_PREFIX
NAMES = ("jobs", "queue", "delayed", "workers", "last", "parked", "shops", "due")
HEARTBEAT_MS = 15_000  # a worker silent this long is dead; its taken jobs go back to the queue


def key(name: str) -> str:
    return ROOT + name


def taken_key(worker: str) -> str:
    return f"{ROOT}taken:{worker}"


def heartbeat_key(worker: str) -> str:
    return f"{ROOT}hb:{worker}"


@dataclass(frozen=True)
class Job:
    api: str
    platform: str
    seller: str
    mode: str = "incremental"
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    attempt: int = 0  # failures so far
    enqueued_at: float = field(default_factory=time.time)
    due_at: float = 0.0  # when the schedule wanted it (0: enqueued by hand)
    last_error: str = ""

    @property
    def shop(self) -> str:
        return shop_key(self.api, self.platform, self.seller)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Job:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def shop_key(api: str, platform: str, seller: str) -> str:
    return f"{api}|{platform}|{seller}"


# KEYS: jobs, queue. ARGV: shop, job json, front ('1': to the front). Returns 1 if queued, 0 if the shop
# already has a pending job.
_ENQUEUE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[3] == '1' then redis.call('LPUSH', KEYS[2], ARGV[1]) else redis.call('RPUSH', KEYS[2], ARGV[1]) end
return 1
"""

# KEYS: delayed, queue. ARGV: now. Moves the retries whose time has come to the queue.
_PROMOTE = """
local ready = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, shop in ipairs(ready) do
  redis.call('ZREM', KEYS[1], shop)
  redis.call('RPUSH', KEYS[2], shop)
end
return #ready
"""

# KEYS: workers, queue. ARGV: key prefix. Puts the taken jobs of dead workers back at the queue's front.
_REAP = """
local moved = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'hb:' .. w) == 0 then
    local taken = ARGV[1] .. 'taken:' .. w
    local shop = redis.call('RPOP', taken)
    while shop do
      redis.call('LPUSH', KEYS[2], shop)
      moved = moved + 1
      shop = redis.call('RPOP', taken)
    end
    redis.call('SREM', KEYS[1], w)
  end
end
return moved
"""

# KEYS: jobs, taken, last, delayed, parked, queue. ARGV: shop, kind, job json, last json, time.
# kind: done (the job is over), retry (back after a delay), park (given up), back (to the queue's front).
_FINISH = """
redis.call('LREM', KEYS[2], 0, ARGV[1])
if ARGV[2] == 'done' then
  redis.call('HDEL', KEYS[1], ARGV[1])
elseif ARGV[2] == 'retry' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
elseif ARGV[2] == 'park' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[3])
elseif ARGV[2] == 'back' then
  redis.call('LPUSH', KEYS[6], ARGV[1])
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
return 1
"""


class JobQueue:
    """The fleet's job operations for one worker (or for ``enqueue``, ``schedule``, ``status``)."""

    def __init__(self, server: redis.Redis, worker: str = "") -> None:
        self.server = server
        self.worker = worker or f"w-{secrets.token_hex(4)}"
        self._enqueue = server.register_script(_ENQUEUE)
        self._promote = server.register_script(_PROMOTE)
        self._reap = server.register_script(_REAP)
        self._finish = server.register_script(_FINISH)

    def enqueue(self, job: Job, *, front: bool = False) -> bool:
        """Queue ``job``; False when its shop already has a job queued, waiting or running."""
        args = [job.shop, job.to_json(), "1" if front else "0"]
        return bool(self._enqueue(keys=[key("jobs"), key("queue")], args=args))

    def beat(self) -> None:
        pipe = self.server.pipeline(transaction=False)
        pipe.set(heartbeat_key(self.worker), "1", px=HEARTBEAT_MS)
        pipe.sadd(key("workers"), self.worker)
        pipe.execute()

    def housekeeping(self) -> tuple[int, int]:
        """Retries whose time has come go to the queue; dead workers' jobs go back. (promoted, reaped)"""
        promoted = int(self._promote(keys=[key("delayed"), key("queue")], args=[time.time()]))
        reaped = int(self._reap(keys=[key("workers"), key("queue")], args=[ROOT]))
        return promoted, reaped

    def take(self, timeout: float) -> Job | None:
        """Block up to ``timeout`` s for a job; it moves to this worker's taken list atomically."""
        raw_shop = self.server.blmove(
            key("queue"), taken_key(self.worker), max(1, round(timeout)), "LEFT", "RIGHT"
        )
        if raw_shop is None:
            return None
        shop = raw_shop.decode() if isinstance(raw_shop, bytes) else str(raw_shop)
        raw = self.server.hget(key("jobs"), shop)
        if raw is None:  # the job was removed meanwhile (e.g. parked by hand): nothing to run
            self.server.lrem(taken_key(self.worker), 0, shop)
            return None
        return Job.from_json(raw)

    def finish(
        self,
        job: Job,
        kind: str,
        *,
        last: dict[str, Any] | None = None,
        at: float = 0.0,
        parked: dict[str, Any] | None = None,
    ) -> None:
        body = job.to_json() if parked is None else json.dumps(parked, ensure_ascii=False)
        keys = [key("jobs"), taken_key(self.worker), key("last"), key("delayed"), key("parked"), key("queue")]
        last_json = json.dumps(last, ensure_ascii=False) if last else ""
        self._finish(keys=keys, args=[job.shop, kind, body, last_json, at])

    def leave(self) -> None:
        self.server.srem(key("workers"), self.worker)
        self.server.delete(heartbeat_key(self.worker))

    def last(self, shop: str) -> dict[str, Any]:
        raw = self.server.hget(key("last"), shop)
        return json.loads(raw) if raw else {}

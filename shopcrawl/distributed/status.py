"""What ``shopcrawl status`` shows: the live state of the runs in Redis. Pure reads, no writes."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from shopcrawl.distributed import keys as K

RATE_WINDOW_SECONDS = 10


@dataclass
class RunStatus:
    seller_id: str
    run_id: str
    state: str  # running | closed | abandoned
    started_at: str
    declared_total: int | None
    listed: int
    stored: int  # distinct items written to the store (stored, or rejected with a reason)
    queued: int
    leased: int
    workers_alive: int
    api_calls: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def run_statuses(server: redis.Redis, seller_id: str | None = None) -> list[RunStatus]:
    """Every run whose keys are still in Redis, newest first (a closed run for an hour after it
    closed)."""
    out = []
    for meta_key in server.scan_iter(match=K.run_meta_pattern(seller_id or None), count=1000):
        parsed = K.parse_run_meta_key(_text(meta_key))
        if parsed is None:
            continue
        seller, run_id = parsed
        keys = K.RunKeys(seller, run_id)
        # One snapshot (MULTI): a run seen with listed items also shows the total its first page set.
        pipe = server.pipeline(transaction=True)
        pipe.hgetall(keys.meta)
        pipe.hgetall(keys.counters)
        pipe.smembers(keys.workers)
        pipe.hlen(keys.owner)
        pipe.scard(keys.done)
        pipe.zcard(keys.queue)
        pipe.exists(keys.closed)
        raw_meta, raw_counters, members, listed, stored, queued, closed = pipe.execute()
        meta = {_text(k): _text(v) for k, v in raw_meta.items()}
        counters = {_text(k): _text(v) for k, v in raw_counters.items()}
        workers = [_text(w) for w in members]
        alive = sum(1 for w in workers if server.exists(keys.heartbeat(w)))
        leased = sum(int(server.hlen(keys.leases(w))) for w in workers)
        state = "closed" if closed else ("running" if alive else "abandoned")
        out.append(
            RunStatus(
                seller_id=seller,
                run_id=run_id,
                state=state,
                started_at=meta.get("started_at", ""),
                declared_total=int(meta["declared_total"]) if "declared_total" in meta else None,
                listed=int(meta.get("listed_final", listed)),  # a closed run keeps only its counts
                stored=int(meta.get("stored_final", stored)),
                queued=int(queued),
                leased=leased,
                workers_alive=alive,
                api_calls=int(counters.get("shopcrawl/api/calls", 0)),
            )
        )
    return sorted(out, key=lambda r: r.started_at, reverse=True)


def calls_per_second(server: redis.Redis, window: int = RATE_WINDOW_SECONDS) -> float:
    """API calls per second over the last ``window`` seconds, all app keys together."""
    now = int(time.time())
    total = 0
    for key in server.scan_iter(match=K.calls_prefix() + "*", count=1000):
        second = _text(key).rsplit(":", 1)[1]
        if second.isdigit() and now - window <= int(second) < now:
            total += int(server.get(key) or 0)
    return total / window

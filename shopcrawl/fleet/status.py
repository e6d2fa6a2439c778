"""The fleet part of ``shopcrawl status``: the queue, the workers, each scheduled shop's state, its last
complete run and its age, due and overdue shops, and the parked jobs. Pure reads."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from shopcrawl.fleet.jobs import ROOT, key


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_hash(server: redis.Redis, name: str) -> dict[str, dict[str, Any]]:
    return {_text(k): json.loads(v) for k, v in server.hgetall(key(name)).items()}


def _scores(server: redis.Redis, name: str) -> dict[str, float]:
    pairs: list[Any] = list(server.zrange(key(name), 0, -1, withscores=True))
    return {_text(member): float(score) for member, score in pairs}


def fleet_status(server: redis.Redis, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    queued = [_text(s) for s in server.lrange(key("queue"), 0, -1)]
    delayed = _scores(server, "delayed")
    jobs = _json_hash(server, "jobs")
    last = _json_hash(server, "last")
    parked = _json_hash(server, "parked")
    specs = _json_hash(server, "shops")
    due = _scores(server, "due")
    workers = [_text(w) for w in server.smembers(key("workers"))]
    alive = [w for w in workers if server.exists(f"{ROOT}hb:{w}")]
    shops = []
    for shop in sorted(set(specs) | set(jobs) | set(last) | set(parked)):
        spec = specs.get(shop, {})
        record = last.get(shop, {})
        interval = float(spec.get("interval") or 0)
        complete_at = record.get("last_complete_at")
        if shop in parked:
            state = "parked"
        elif shop in delayed:
            state = "retrying"
        elif shop in queued:
            state = "queued"
        elif shop in jobs:
            state = "running"
        else:
            state = "idle"
        age = None if complete_at is None else round(now - float(complete_at), 1)
        overdue = bool(interval) and (age is None or age > 2 * interval) and state != "running"
        if age is None and interval and shop in due:
            overdue = overdue and due[shop] - now < 0  # never complete: overdue once its first slot passed
        shops.append(
            {
                "shop": shop,
                "seller": spec.get("seller") or shop.split("|", 2)[-1],
                "api": spec.get("api") or shop.split("|", 1)[0],
                "interval": interval or None,
                "state": state,
                "next_due": due.get(shop),
                "due": shop in due and due[shop] <= now,
                "overdue": overdue,
                "last_run": record.get("run_id"),
                "last_status": record.get("status"),
                "last_complete_run": record.get("last_complete_run"),
                "last_complete_age": age,
                "error": record.get("error") if state in ("retrying", "parked") else None,
            }
        )
    return {
        "queue_depth": len(queued),
        "retrying": len(delayed),
        "running": sum(1 for s in shops if s["state"] == "running"),
        "workers_alive": len(alive),
        "shops": shops,
        "parked": [{"shop": shop, **entry} for shop, entry in sorted(parked.items())],
    }


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"

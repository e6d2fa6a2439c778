"""``shopcrawl schedule --file shops.toml``: puts each shop on the job queue when it is due, exactly
once per interval, however many schedulers run at once.

The file::

    [defaults]              # optional; every shop inherits these
    api = "top"             # top | 1688 | gateway
    platform = "taobao"     # the gateway's platform; top and 1688 imply theirs
    interval = "6h"         # seconds, or 30m, 6h, 1d
    mode = "incremental"    # or full

    [[shop]]
    seller = "my-shop"
    interval = "2h"

Each shop's next due time lives in Redis (``due``); one Lua script per tick queues every shop whose
time has come and moves its due time on by whole intervals past now, so two schedulers can never both
queue the same interval. A shop that still has a job (queued, waiting for a retry, or running) is not
queued again for that interval; a parked one is not queued until it is unparked.
"""

from __future__ import annotations

import json
import logging
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from shopcrawl.config import MODES, ConfigError, parse_duration, platform_for
from shopcrawl.fleet.jobs import key, shop_key
from shopcrawl.platforms import APIS, PLATFORMS

logger = logging.getLogger(__name__)

MIN_INTERVAL = 10.0


@dataclass(frozen=True)
class ScheduledShop:
    api: str
    platform: str
    seller: str
    interval: float
    mode: str = "incremental"

    @property
    def shop(self) -> str:
        return shop_key(self.api, self.platform, self.seller)


def seconds(raw: Any, where: str) -> float:
    try:
        value = parse_duration(raw)
    except ValueError:
        raise ConfigError(f"{where}: interval must be seconds or e.g. 30m, 6h, 1d; got {raw!r}") from None
    if value < MIN_INTERVAL:
        raise ConfigError(f"{where}: interval must be at least {MIN_INTERVAL:g} s, got {raw!r}")
    return value


def load(path: Path) -> list[ScheduledShop]:
    """The shops of a schedule file, checked; ConfigError names the shop and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the schedule {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the schedule {path} is not valid TOML: {exc}") from None
    defaults = data.get("defaults", {})
    entries = data.get("shop", [])
    if not isinstance(defaults, dict) or not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"the schedule {path} needs at least one [[shop]] table (and [defaults] is a table)"
        )
    unknown = set(data) - {"defaults", "shop"}
    if unknown:
        raise ConfigError(f"the schedule {path} has unknown tables: {', '.join(sorted(unknown))}")
    shops: dict[str, ScheduledShop] = {}
    for number, entry in enumerate(entries, 1):
        merged = {**defaults, **entry}
        where = f"{path} [[shop]] #{number}"
        extra = set(merged) - {"api", "platform", "seller", "interval", "mode"}
        if extra:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(extra))}")
        seller = str(merged.get("seller", "")).strip()
        if not seller:
            raise ConfigError(f"{where}: seller is required")
        api = str(merged.get("api", "top")).lower()
        if api not in APIS:
            raise ConfigError(f"{where}: api must be one of {', '.join(APIS)}, got {api!r}")
        platform = str(merged.get("platform", "taobao")).lower()
        if platform not in PLATFORMS:
            raise ConfigError(f"{where}: platform must be one of {', '.join(PLATFORMS)}, got {platform!r}")
        platform = platform_for(api, platform)
        mode = str(merged.get("mode", "incremental")).lower()
        if mode not in MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if "interval" not in merged:
            raise ConfigError(f"{where}: interval is required (here or in [defaults])")
        item = ScheduledShop(api, platform, seller, seconds(merged["interval"], where), mode)
        if item.shop in shops:
            raise ConfigError(f"{where}: seller {seller} ({api}, {platform}) is listed twice")
        shops[item.shop] = item
    return list(shops.values())


# KEYS: shops, due, jobs, queue, parked. ARGV: now. Queues every due shop that has no pending job and is
# not parked, and moves each due time on by whole intervals past now. Returns the shop keys queued.
_TICK = """
local queued = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, 1000)
for i = 1, #due, 2 do
  local shop, at = due[i], tonumber(due[i + 1])
  local spec = redis.call('HGET', KEYS[1], shop)
  if not spec then
    redis.call('ZREM', KEYS[2], shop)
  else
    local entry = cjson.decode(spec)
    local interval = tonumber(entry['interval'])
    local now = tonumber(ARGV[1])
    local nextat = at + interval * (math.floor((now - at) / interval) + 1)
    redis.call('ZADD', KEYS[2], nextat, shop)
    if redis.call('HEXISTS', KEYS[5], shop) == 0 and redis.call('HEXISTS', KEYS[3], shop) == 0 then
      local job = cjson.encode({api = entry['api'], platform = entry['platform'], seller = entry['seller'],
        mode = entry['mode'], id = ARGV[2] .. '-' .. i, attempt = 0, enqueued_at = now, due_at = at,
        last_error = ''})
      redis.call('HSET', KEYS[3], shop, job)
      redis.call('RPUSH', KEYS[4], shop)
      table.insert(queued, shop)
    end
  end
end
return queued
"""


class Scheduler:
    def __init__(self, server: redis.Redis) -> None:
        self.server = server
        self._tick = server.register_script(_TICK)

    def sync(self, shops: list[ScheduledShop], now: float | None = None) -> None:
        """Make the schedule in Redis the file's: new shops due now, changed ones keep their due time,
        removed ones leave the schedule (a job already queued for them still runs)."""
        now = time.time() if now is None else now
        wanted = {s.shop: s for s in shops}
        pipe = self.server.pipeline(transaction=True)
        for shop, item in wanted.items():
            spec = {
                "api": item.api,
                "platform": item.platform,
                "seller": item.seller,
                "interval": item.interval,
                "mode": item.mode,
            }
            pipe.hset(key("shops"), shop, json.dumps(spec, ensure_ascii=False))
            pipe.zadd(key("due"), {shop: now}, nx=True)
        pipe.execute()
        current = {k.decode() if isinstance(k, bytes) else k for k in self.server.hkeys(key("shops"))}
        gone = sorted(current - set(wanted))
        if gone:
            pipe = self.server.pipeline(transaction=True)
            pipe.hdel(key("shops"), *gone)
            pipe.zrem(key("due"), *gone)
            pipe.execute()
            logger.info("Schedule: %d shops left the schedule", len(gone))

    def tick(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        keys = [key("shops"), key("due"), key("jobs"), key("queue"), key("parked")]
        raw = self._tick(keys=keys, args=[repr(now), f"s{int(now)}"])
        queued = [r.decode() if isinstance(r, bytes) else str(r) for r in raw or []]
        if queued:
            logger.info("Schedule: queued %d shops: %s", len(queued), ", ".join(queued[:10]))
        return queued

"""Scenario 8: the fleet in its steady state. One incremental pass over N sandbox shops, crawled as one
``scrapy crawl`` process per shop (a cron line per shop) and by one long-running ``shopcrawl worker``
taking the N jobs from Redis: shops per hour per worker process, same run."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from redis import Redis

from benchmarks.harness import crawl_settings, shop_env, sqlite_runs, sqlite_store
from benchmarks.procs import Measured, ScenarioFailed, child_pid, process_cpu_seconds, profiled, run_measured
from benchmarks.scenarios import Context, Section, Target, f, interleaved, median, n, ratio, reps_note
from benchmarks.services import Sandbox, redis, sandbox
from shopcrawl.auth.grants import CredentialsFile, Grant
from shopcrawl.fleet.jobs import Job, JobQueue
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS, crawl_command

NUMBER = 8
TITLE = "Fleet: shops per hour per worker"
PROCESSES = "one shop per process"
WAYS = {PROCESSES: 0, "fleet, 1 worker": 1, "fleet, 1 worker, 2 slots": 2}  # name: worker slots


class Fleet:
    """N shops of one sandbox, one SQLite store and the credentials file the workers read."""

    def __init__(self, ctx: Context, box: Sandbox) -> None:
        self.ctx, self.box = ctx, box
        self.folder = ctx.folder("fleet")
        self.shops = [s for s in box.shops() if s["seller"].startswith("shop-")]
        self.items = sum(s["items"] for s in self.shops)
        self.floor = sum(math.ceil(s["items"] / 200) for s in self.shops)  # an unchanged shop: its listing
        self.store = sqlite_store(self.folder, "fleet")
        self.credentials = self.folder / "credentials.json"
        self.passes = 0
        _grants(self.credentials, self.shops)

    def processes(self) -> dict[str, Any]:
        """``scrapy crawl shop -a seller_id=shop-NNN`` with that shop's session, one after another."""
        name, known, begun = self._begin(PROCESSES)
        measured: list[Measured] = []
        started = time.perf_counter()
        for shop in self.shops:
            tag = f"{name}-{shop['seller']}"
            command = profiled(crawl_command(shop["seller"], crawl_settings()), tag)
            env = shop_env(self.box, "top", self.store, {"SHOPCRAWL_SESSION": shop["session"]})
            measured.append(run_measured(command, env, self.folder, tag))
            if measured[-1].exit != 0:
                raise ScenarioFailed(f"{tag}: exit status {measured[-1].exit}\n{measured[-1].tail()}")
        wall = time.perf_counter() - started
        return self._end(PROCESSES, known, begun, wall, measured, redis_cpu=None)

    def worker(self, way: str, *, slots: int, mode: str = "incremental") -> dict[str, Any]:
        """A fresh redis-server holding one job per shop, then ``shopcrawl worker --max-jobs N``."""
        name, known, begun = self._begin(way)
        with redis(self.folder / f"redis-{self.passes}") as url:
            redis_pid = child_pid("redis-server")
            with Redis.from_url(url) as server:
                queue = JobQueue(server)
                for shop in self.shops:
                    queue.enqueue(Job("top", "taobao", shop["seller"], mode))
            env = shop_env(
                self.box,
                "top",
                self.store,
                {"REDIS_URL": url, "SHOPCRAWL_SESSION": "", "SHOPCRAWL_CREDENTIALS": str(self.credentials)},
            )
            command = [sys.executable, "-m", "shopcrawl.cli", "worker", "--max-jobs", str(len(self.shops)),
                       "--slots", str(slots), "-s", "LOG_LEVEL=WARNING"]  # fmt: skip
            redis_cpu = process_cpu_seconds(redis_pid) if redis_pid else None
            measured = run_measured(profiled(command, name), env, self.folder, name)
            if redis_pid and redis_cpu is not None:
                redis_cpu = process_cpu_seconds(redis_pid) - redis_cpu
        if measured.exit != 0:
            raise ScenarioFailed(f"{name}: exit status {measured.exit}\n{measured.tail()}")
        return self._end(way, known, begun, measured.wall, [measured], redis_cpu=redis_cpu)

    def _begin(self, way: str) -> tuple[str, set[str], float]:
        self.passes += 1
        known = {run["run_id"] for run in sqlite_runs(self.store)}
        self.box.reset()
        name = f"fleet-{self.passes}-" + ("processes" if way == PROCESSES else f"worker-{WAYS.get(way, 1)}")
        return name, known, process_cpu_seconds(self.box.pid)

    def _end(
        self,
        way: str,
        known: set[str],
        sandbox_cpu: float,
        wall: float,
        measured: list[Measured],
        *,
        redis_cpu: float | None,
    ) -> dict[str, Any]:
        """The pass's figures, once every shop has exactly one new complete run holding all its items."""
        sandbox_cpu = process_cpu_seconds(self.box.pid) - sandbox_cpu
        new = [run for run in sqlite_runs(self.store) if run["run_id"] not in known]
        sizes = {s["seller"]: s["items"] for s in self.shops}
        stored = {run["seller_id"]: run["items_stored"] for run in new if run["status"] == "complete"}
        if len(new) != len(sizes) or stored != sizes:
            statuses = sorted((run["seller_id"], run["status"], run["items_stored"]) for run in new)
            tails = "\n".join(m.tail(5) for m in measured[-3:])
            raise ScenarioFailed(
                f"{way}: expected one complete run of each of {len(sizes)} shops holding all its items, "
                f"got {len(new)} runs: {statuses}\n{tails}"
            )
        cpu = sum(m.cpu for m in measured)
        calls = self.box.stats()["calls"]
        return {
            "way": way,
            "shops": len(new),
            "complete_runs": len(stored),
            "items": sum(stored.values()),
            "wall_s": wall,
            "cpu_s": cpu,
            "processes": len(measured),
            "process_wall_s": [round(m.wall, 3) for m in measured],
            "process_cpu_s": [round(m.cpu, 3) for m in measured],
            "peak_rss_mib": max(m.rss_mib for m in measured),
            "calls": sum(calls.values()),
            "calls_by_method": dict(calls),
            "sandbox_cpu_s": sandbox_cpu,
            "redis_cpu_s": redis_cpu,
        }


def _grants(path: Path, shops: list[dict[str, Any]]) -> None:
    """Each shop's own session in the credentials file, as ``shopcrawl auth login`` would store it."""
    now = time.time()
    file = CredentialsFile(path)
    app_key = SANDBOX_CREDENTIALS["SHOPCRAWL_APP_KEY"]
    grants = [
        Grant(api="top", app_key=app_key, seller=s["seller"], access_token=s["session"],
              expires_at=now + 365 * 86400, nick=s["seller"], obtained_at=now)
        for s in shops
    ]  # fmt: skip
    with file.locked():
        file.save(grants)


def run(ctx: Context) -> Section:
    count = ctx.size(40, 4)
    spread = "100-300" if ctx.quick else "200-2000"
    with sandbox(100, "--shops", str(count), "--shop-items", spread, workdir=ctx.workdir) as box:
        fleet = Fleet(ctx, box)
        if len(fleet.shops) != count:
            raise ScenarioFailed(f"the sandbox serves {len(fleet.shops)} extra shops, not {count}")
        first = fleet.worker("first crawl (full)", slots=1, mode="full")

        def way(name: str, slots: int) -> Any:
            return fleet.processes if not slots else lambda: fleet.worker(name, slots=slots)

        runs = interleaved(ctx, NUMBER, ctx.reps, [(name, way(name, slots)) for name, slots in WAYS.items()])
    return _section(ctx, fleet, spread, first, runs)


def _section(
    ctx: Context, fleet: Fleet, spread: str, first: dict[str, Any], runs: dict[str, list[dict[str, Any]]]
) -> Section:
    med: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        redis_cpu = [r["redis_cpu_s"] for r in rs if r["redis_cpu_s"] is not None]
        med[name] = {
            "wall_s": median([r["wall_s"] for r in rs]),
            "shops_per_hour": median([r["shops"] / r["wall_s"] * 3600 for r in rs]),
            "items_per_s": median([r["items"] / r["wall_s"] for r in rs]),
            "cpu_per_shop": median([r["cpu_s"] / r["shops"] for r in rs]),
            "busy": median([r["cpu_s"] / r["wall_s"] for r in rs]),
            "peak_rss_mib": median([r["peak_rss_mib"] for r in rs]),
            "redis_cpu_s": median(redis_cpu) if redis_cpu else None,
            "sandbox_cpu_s": median([r["sandbox_cpu_s"] for r in rs]),
            "calls": median([r["calls"] for r in rs]),
        }
    base = med[PROCESSES]["shops_per_hour"]
    rows = []
    for name, m in med.items():
        m["ratio"] = m["shops_per_hour"] / base
        rows.append([name, f(m["wall_s"]), n(m["shops_per_hour"]), n(m["items_per_s"]),
                     f(m["cpu_per_shop"], 3), f(m["peak_rss_mib"], 0), f(m["redis_cpu_s"]),
                     f(m["sandbox_cpu_s"]), n(m["calls"]), ratio(m["ratio"])])  # fmt: skip
    shops, items = len(fleet.shops), fleet.items
    low, high = (min(s["items"] for s in fleet.shops), max(s["items"] for s in fleet.shops))
    what = [
        f"One sandbox serving {shops} shops (`--shops {shops} --shop-items {spread}`: {low:,} to {high:,} "
        f"items, {items:,} in all), TOP, no latency, `SHOPCRAWL_QPS` unset, all crawls into one SQLite "
        "store. First every shop was crawled once in full by a fleet worker (not measured); each measured "
        "pass is then one incremental crawl of every shop, the shops unchanged (listing pages only; every "
        "listed item carried forward), which is the steady state a monitor lives in.",
        "Ways: **one shop per process** is `python -m scrapy crawl shop -a seller_id=shop-NNN` with "
        "`SHOPCRAWL_SESSION=sandbox-session-shop-NNN` and no Redis, one shop after another (a cron line per "
        "shop). **fleet, 1 worker** is a fresh redis-server holding one job per shop (pushed through "
        "`shopcrawl.fleet.jobs.JobQueue` before the clock starts, as a schedule would), then one "
        f"`python -m shopcrawl.cli worker --max-jobs {shops}` process, which exits after the {shops} jobs; "
        "each seller's session comes from a credentials file (`SHOPCRAWL_CREDENTIALS`, `SHOPCRAWL_SESSION` "
        "empty). **2 slots** adds `--slots 2`. Wall time runs from the first process's start to the last "
        f"one's exit; every pass must leave {shops} new complete runs in the store's `runs` table, each "
        "holding all its shop's items.",
        reps_note(ctx.reps) + " The passes are incremental against the store the previous passes wrote, "
        "whichever way wrote them.",
    ]
    notes = [
        "Shops/hour per worker process is shops ÷ wall s × 3,600 (one process at a time in every way). "
        "Baseline of the last column: one shop per process, same run. CPU is the crawl processes' own "
        "(`wait4`), divided by the shops; Redis and the sandbox are shown apart. Peak RSS is the largest "
        "crawl process's.",
        "Busy share (the crawl processes' CPU s ÷ wall s): "
        + ", ".join(f"{name} {m['busy']:.0%}" for name, m in med.items())
        + f". Calls are the sandbox's; the floor of a pass over the unchanged shops is their listing pages, "
        f"Σ ceil(items/200) = {fleet.floor:,}.",
        f"The first, full crawl (not measured): {first['items']:,} items in {first['wall_s']:.1f} s, "
        f"{first['calls']:,} calls, by one fleet worker.",
    ]
    fleet_ratio, slots_ratio = (med[name]["ratio"] for name in list(WAYS)[1:])
    one = list(WAYS)[1]
    target = Target(
        None,
        f"none set by the issue (measured only). A fleet worker crawled {fleet_ratio:.2f}× the shops per "
        f"hour of one shop per process ({med[one]['shops_per_hour']:,.0f} against {base:,.0f}); with 2 slots "
        f"{slots_ratio:.2f}×.",
    )
    headers = ["way", "wall s", "shops/hour per worker process", "items/s", "CPU s per shop", "peak RSS MiB",
               "Redis CPU s", "sandbox CPU s", "calls", "shops/hour vs one shop per process"]  # fmt: skip
    raw = {
        "shops": shops,
        "shop_items": spread,
        "items": items,
        "listing_floor": fleet.floor,
        "sizes": {s["seller"]: s["items"] for s in fleet.shops},
        "first_crawl": first,
        "runs": runs,
        "medians": med,
    }
    return Section(NUMBER, TITLE, what, headers, rows, notes, target, raw)

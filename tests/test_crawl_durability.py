"""A crawl that is stopped says so, and a crawl that is killed loses nothing: real sandbox, real
`scrapy crawl` processes, real SQLite files and a real MongoDB-wire server."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from functools import partial
from pathlib import Path

import pymongo
import pytest

from shopcrawl.sandbox.local import crawl_command, crawl_env

EXIT_INTERRUPTED = 4


class StoreView:
    """Read-only queries on the store a crawl writes, SQLite or MongoDB."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.mongo = pymongo.MongoClient(uri) if uri.startswith("mongodb") else None

    def close(self) -> None:
        if self.mongo is not None:
            self.mongo.close()

    def _sql(self, sql: str, *args: object) -> list[tuple]:
        path = self.uri.removeprefix("sqlite:///")
        if not Path(path).exists():
            return []
        try:
            with sqlite3.connect(path, timeout=30) as conn:
                return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # schema not created yet
            return []

    def runs(self) -> dict[str, tuple[str, str]]:
        """run_id -> (status, reason)."""
        if self.mongo is None:
            return {r: (s, why) for r, s, why in self._sql("SELECT run_id, status, reason FROM runs")}
        db = self.mongo.get_default_database()
        return {d["run_id"]: (d["status"], d["reason"]) for d in db.runs.find()}

    def first_seen(self) -> dict[int, object]:
        if self.mongo is None:
            return dict(self._sql("SELECT num_iid, first_seen FROM items"))
        db = self.mongo.get_default_database()
        return {d["num_iid"]: d["first_seen"] for d in db.items.find({}, {"num_iid": 1, "first_seen": 1})}

    def first_seen_unchanged(self, before: dict[int, object]) -> bool:
        """Every item of ``before`` is stored with that first_seen. On MongoDB, counted by the server:
        the first crawl's first_seen values are a handful of batch times, and an item written anew
        would carry a later one."""
        if self.mongo is None:
            return self.first_seen() == before
        db = self.mongo.get_default_database()
        kept = db.items.count_documents({"first_seen": {"$in": sorted(set(before.values()))}})
        return kept == db.items.count_documents({}) == len(before)

    def observations(self, run_id: str) -> list[tuple[int, int]]:
        if self.mongo is None:
            sql = "SELECT num_iid, sku_id FROM observations WHERE run_id = ?"
            return [tuple(row) for row in self._sql(sql, run_id)]
        db = self.mongo.get_default_database()
        return [(d["num_iid"], d["sku_id"]) for d in db.observations.find({"run_id": run_id})]


def _start(url: str, store_uri: str, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = tmp_path / f"crawl-{len(list(tmp_path.glob('crawl-*.log')))}.log"
    full_env = crawl_env(url, store_uri, {"SHOPCRAWL_PROGRESS_INTERVAL": "0", **env})
    mongo = store_uri.startswith("mongodb")
    debug = {"LOG_LEVEL": "DEBUG"} if mongo else {}  # for _has_written
    # On the MongoDB-wire test server an incremental crawl's per-page read of the stored items costs
    # ~1.7 s a page (FerretDB decodes every document; no $in push-down), ~45 s a crawl here: the
    # MongoDB case writes through full crawls (the same write path), the SQLite case incremental ones.
    mode = ("-a", "mode=full") if mongo else ()
    proc = subprocess.Popen(
        crawl_command("demo", {"LOG_FILE": log, **debug}, *mode),
        env=full_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _has_written(proc, view: StoreView) -> bool:
    """The crawl has a batch in the store. SQLite answers that with one indexed lookup; the test
    MongoDB server would scan a collection each time, so there the crawl's DEBUG log says it."""
    if view.mongo is None:
        running = [r for r, (status, _) in view.runs().items() if status == "running"]
        sql = "SELECT 1 FROM observations WHERE run_id = ? LIMIT 1"
        return any(view._sql(sql, r) for r in running)
    return proc.log.exists() and "Wrote " in proc.log.read_text(errors="replace")


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_crawl_ends_interrupted_with_the_true_coverage(sandbox_factory, tmp_path, signum):
    sandbox = sandbox_factory("--items", "2000", "--seed", "61")
    store_uri = f"sqlite:///{tmp_path / 'shop.db'}"
    view = StoreView(store_uri)
    env = {"SHOPCRAWL_QPS": "25", "SHOPCRAWL_STORE_BATCH": "100", "SHOPCRAWL_STORE_FLUSH_SECONDS": "0.2"}
    proc = _start(sandbox.url, store_uri, tmp_path, env)
    _wait_for(lambda: _has_written(proc, view), "the first stored batch")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err.decode()
    ((run_id, status, declared, stored, coverage, reason),) = view._sql(
        "SELECT run_id, status, declared_total, items_stored, coverage, reason FROM runs"
    )
    distinct = len({num_iid for num_iid, _ in view.observations(run_id)})
    assert status == "interrupted" and declared == 2000
    assert 0 < stored == distinct < 2000
    assert coverage == pytest.approx(distinct / 2000)
    summary = out.decode().strip().splitlines()[-1]
    assert summary.startswith(f"Run {run_id} INTERRUPTED: {distinct:,} / 2,000 items accounted for")
    assert f"{2000 - distinct:,} declared items not accounted for" in summary and reason in summary


@pytest.mark.parametrize("backend", ["sqlite", "mongodb"])
def test_sigkill_at_random_moments_loses_nothing(sandbox_factory, tmp_path, request, backend):
    """10 SIGKILLs during the writes of a crawl over a stored 5,000-item shop: no stored item goes
    missing or gets a new first_seen, the killed runs end up abandoned, and a re-run is exact."""
    items, kills = 5000, 10
    sandbox = sandbox_factory("--items", str(items), "--seed", "67")
    if backend == "sqlite":
        store_uri = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        store_uri = request.getfixturevalue("mongo_uri")
    view = StoreView(store_uri)
    # Batches of 1,000 on the test MongoDB server: each batch there costs a pass over the collection.
    batch = "100" if backend == "sqlite" else "1000"
    env = {"SHOPCRAWL_STORE_BATCH": batch, "SHOPCRAWL_STORE_FLUSH_SECONDS": "0.2"}
    try:
        first = _start(sandbox.url, store_uri, tmp_path, env)
        assert first.communicate(timeout=300) and first.returncode == 0
        before = view.first_seen()
        assert len(before) == items
        rng = random.Random(7)
        killed = []
        for _ in range(kills):
            # SQLite writes are quick: a rate limit spreads them over the crawl. MongoDB-wire writes
            # are slow on the test server and spread themselves.
            qps = "150" if backend == "sqlite" else "0"
            proc = _start(sandbox.url, store_uri, tmp_path, {**env, "SHOPCRAWL_QPS": qps})
            _wait_for(partial(_has_written, proc, view), "a write by the new crawl", 120)
            time.sleep(rng.uniform(0, 1.2))  # a random moment during the writes, not a readiness wait
            proc.kill()
            proc.communicate(timeout=30)
            killed += [r for r, (status, _) in view.runs().items() if status == "running"]
            assert view.first_seen_unchanged(before)  # every stored item still there, first_seen unchanged
        last = _start(sandbox.url, store_uri, tmp_path, env)
        _out, err = last.communicate(timeout=300)
        assert last.returncode == 0, err.decode()
        runs = view.runs()
        assert len(killed) == kills
        assert all(runs[r][0] == "abandoned" for r in killed), {r: runs[r] for r in killed}
        (final,) = [r for r, (status, _) in runs.items() if status == "complete" and r not in killed][-1:]
        observed = view.observations(final)
        expected = sum(max(1, len(item.get("skus") or [])) for item in sandbox.shop())
        assert len(observed) == len(set(observed)) == expected
        assert view.first_seen() == before
    finally:
        view.close()

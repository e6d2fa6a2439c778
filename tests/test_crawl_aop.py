"""End to end with ``-a api=1688``: `scrapy crawl shop` against the sandbox's AOP gateway, into real
SQLite files (and once shared by two workers over a real redis-server)."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import time

from shopcrawl.platforms.aop import DETAIL_API, LISTING_API
from shopcrawl.sandbox.local import crawl_command, crawl_env
from tests.conftest import crawl

AOP = ("-a", "api=1688")
SECRET, SESSION = "sentinel-secret-A1B", "sentinel-token-C2D"


def _floor(items: int) -> int:
    return math.ceil(items / 20) + items


def test_full_crawl_stores_every_item_with_tiers_at_the_floor(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "450", "--seed", "3")
    result = crawl(sandbox.base + "/openapi", tmp_path, extra_args=AOP)
    assert result.returncode == 0, result.stderr
    assert sandbox.stats()["calls"] == {LISTING_API: math.ceil(450 / 20), DETAIL_API: 450}
    assert sum(sandbox.stats()["calls"].values()) == _floor(450)
    truth = {item["num_iid"]: item for item in sandbox.shop()}
    rows = result.query("SELECT num_iid, platform, num, price_tiers, min_order_quantity FROM items")
    assert {row[0] for row in rows} == truth.keys()
    assert {row[1] for row in rows} == {"1688"}
    assert all(num == truth[n]["num"] for n, _, num, _, _ in rows)
    assert all(tiers != "[]" and moq is not None for _, _, _, tiers, moq in rows)
    tiers = result.scalar("SELECT COUNT(*) FROM tier_observations")
    assert 2 * 450 <= tiers <= 3 * 450
    assert tiers == result.scalar("SELECT SUM(json_array_length(price_tiers)) FROM items")
    status, coverage, declared, listed = result.query(
        "SELECT status, coverage, declared_total, items_listed FROM runs"
    )[0]
    assert (status, coverage, declared, listed) == ("complete", 1.0, 450, 450)
    assert "450 / 450 items accounted for (100%)" in result.log


def test_faults_still_complete_within_the_floor_plus_retries(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(
        "--items", "300", "--seed", "7", "--rate-5xx", "0.05", "--rate-truncated", "0.05"
    )
    result = crawl(sandbox.base + "/openapi", tmp_path, extra_args=AOP)
    assert result.returncode == 0, result.stderr
    assert result.scalar("SELECT COUNT(*) FROM items") == 300
    status, retries = result.query("SELECT status, retries FROM runs")[0]
    stats = sandbox.stats()
    faults = stats["outcomes"].get("5xx", 0) + stats["outcomes"].get("truncated", 0)
    assert faults > 0 and status == "complete"
    assert sum(stats["calls"].values()) == _floor(300) + faults
    assert faults <= retries


def test_vanished_and_invalid_products_are_rejects_and_the_run_is_accounted_for(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "120", "--seed", "9", "--vanish-items", "3", "--invalid-items", "6")
    result = crawl(sandbox.base + "/openapi", tmp_path, extra_args=AOP)
    assert result.returncode == 0, result.stderr
    planted = sandbox.bad_items()
    reasons = dict(result.query("SELECT num_iid, reason FROM rejects"))
    assert {n for n, r in reasons.items() if r.startswith("detail/PRODUCT_NOT_EXIST: ")} == set(
        planted["vanish"]
    )
    assert {n for n, r in reasons.items() if r.startswith("invalid/")} == {int(n) for n in planted["invalid"]}
    assert result.query("SELECT items_stored, items_rejected, status FROM runs") == [(111, 9, "complete")]
    assert "120 / 120 items accounted for (100%)" in result.log


def test_a_refused_token_stops_the_crawl_with_the_setting_to_fix(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "40", "--session", "the-real-token")
    result = crawl(sandbox.base + "/openapi", tmp_path, extra_args=AOP)
    assert result.returncode != 0
    assert "Request need user authorized" in result.log and "SHOPCRAWL_SESSION" in result.log
    assert "sandbox-session" not in result.log


def test_two_workers_share_one_crawl_over_redis(sandbox_factory, tmp_path, redis_url):
    sandbox = sandbox_factory("--items", "500", "--seed", "41", "--app-secret", SECRET, "--session", SESSION)
    env = crawl_env(
        sandbox.base + "/openapi",
        f"sqlite:///{tmp_path / 'shop.db'}",
        {"REDIS_URL": redis_url, "SHOPCRAWL_APP_SECRET": SECRET, "SHOPCRAWL_SESSION": SESSION},
    )
    procs = []
    for n in range(2):
        args = crawl_command("demo", {"LOG_FILE": tmp_path / f"worker-{n}.log"}, *AOP)
        procs.append(subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 240
    assert [p.wait(timeout=max(1, deadline - time.monotonic())) for p in procs] == [0, 0]
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT num_iid) FROM items").fetchone() == (500, 500)
        assert conn.execute("SELECT status, coverage FROM runs").fetchall() == [("complete", 1.0)]
        assert conn.execute("SELECT COUNT(DISTINCT num_iid) FROM tier_observations").fetchone() == (500,)
    assert sum(sandbox.stats()["calls"].values()) == _floor(500)
    logs = "".join((tmp_path / f"worker-{n}.log").read_text() for n in range(2))
    assert SECRET not in logs and SESSION not in logs


def test_qps_over_limit_pauses_the_api_and_the_run_completes(sandbox_factory, tmp_path):
    # No SHOPCRAWL_QPS: the crawl runs into the gateway's limit again and again. Each refusal holds the
    # API (no retry is spent on it), so with the default RETRY_TIMES nothing is given up.
    sandbox = sandbox_factory("--items", "300", "--seed", "13", "--qps", "40", "--ban-seconds", "0.3")
    result = crawl(sandbox.base + "/openapi", tmp_path, extra_args=AOP)
    assert result.returncode == 0, result.stderr
    outcomes = sandbox.stats()["outcomes"]
    assert outcomes.get("ban", 0) > 0 and outcomes["ok"] == _floor(300)
    assert result.scalar("SELECT COUNT(*) FROM items") == 300
    assert result.scalar("SELECT COUNT(*) FROM rejects") == 0
    assert result.query("SELECT status FROM runs") == [("complete",)]
    assert "banned for 1 s" in result.log

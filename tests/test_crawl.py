"""End to end: `scrapy crawl shop` against the real sandbox, into real SQLite files."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import crawl


def _skus_total(shop: list[dict]) -> int:
    return sum(max(1, len(item.get("skus") or [])) for item in shop)


def test_full_crawl_stores_every_item_at_the_floor_call_count(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "2000", "--seed", "3")
    result = crawl(sandbox.url, tmp_path)
    assert result.returncode == 0, result.stderr
    calls = sandbox.stats()["calls"]
    assert calls == {"taobao.items.onsale.get": 10, "taobao.items.seller.list.get": 100}
    truth = {item["num_iid"]: item for item in sandbox.shop()}
    stored = {row[0]: row for row in result.query("SELECT num_iid, price, price_fen, num, skus FROM items")}
    assert stored.keys() == truth.keys()
    for num_iid, (_, price, fen, num, skus) in stored.items():
        item = truth[num_iid]
        assert (price, num) == (item["price"], item["num"])
        assert fen == round(float(price) * 100) and isinstance(fen, int)
        assert [s["sku_id"] for s in json.loads(skus)] == [s["sku_id"] for s in item.get("skus") or []]
    assert result.scalar("SELECT COUNT(*) FROM observations") == _skus_total(list(truth.values()))
    status, coverage, declared, listed = result.query(
        "SELECT status, coverage, declared_total, items_listed FROM runs"
    )[0]
    assert (status, coverage, declared, listed) == ("complete", 1.0, 2000, 2000)
    assert "2,000 / 2,000 items accounted for (100%)" in result.log


def test_coverage_past_the_paging_cap(sandbox_factory, tmp_path):
    """2,500 items under a cap of 1,000 take three windows; the logic is the same at 25,000 / 20,000
    (benchmarks/full_crawl.py)."""
    sandbox = sandbox_factory("--items", "2500", "--page-cap", "1000", "--seed", "5")
    result = crawl(sandbox.url, tmp_path, settings={"SHOPCRAWL_PAGE_CAP": 1000})
    assert result.returncode == 0, result.stderr
    assert result.scalar("SELECT COUNT(DISTINCT num_iid) FROM items") == 2500
    assert result.scalar("SELECT COUNT(*) FROM observations") == _skus_total(sandbox.shop())
    assert result.query("SELECT status, coverage FROM runs") == [("complete", 1.0)]
    stats = sandbox.stats()
    floor = math.ceil(2500 / 200) + math.ceil(2500 / 20)
    assert stats["outcomes"] == {"ok": sum(stats["calls"].values())}
    assert sum(stats["calls"].values()) <= 1.05 * floor
    assert "shopcrawl/listing/windows': 3" in result.log
    assert "2,500 / 2,500 items accounted for (100%)" in result.log
    assert "Progress: listing pages" in result.log


def test_a_rerun_duplicates_nothing_and_adds_one_observation_set(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "600", "--seed", "11")
    first = crawl(sandbox.url, tmp_path)
    second = crawl(sandbox.url, tmp_path)
    assert first.returncode == second.returncode == 0
    skus = _skus_total(sandbox.shop())
    assert second.scalar("SELECT COUNT(*) FROM items") == 600
    assert second.scalar("SELECT COUNT(*) FROM runs") == 2
    assert second.query("SELECT run_id, COUNT(*) FROM observations GROUP BY run_id") == [
        (run_id, skus) for (run_id,) in second.query("SELECT run_id FROM runs ORDER BY run_id")
    ]
    first_seen = second.query("SELECT COUNT(*) FROM items WHERE first_seen < last_seen")
    assert first_seen == [(600,)]


def test_faults_and_bans_lose_nothing_and_bans_are_waited_out(sandbox_factory, tmp_path):
    call_log = tmp_path / "calls.jsonl"
    sandbox = sandbox_factory(
        "--items", "4000", "--seed", "13",
        "--rate-5xx", "0.02", "--rate-timeout", "0.02", "--rate-truncated", "0.02",
        "--rate-garbled", "0.02", "--rate-isp", "0.02",
        "--timeout-delay", "4", "--qps", "60", "--ban-seconds", "1",
        "--call-log", str(call_log),
    )  # fmt: skip
    result = crawl(sandbox.url, tmp_path, settings={"DOWNLOAD_TIMEOUT": 1, "CONCURRENT_REQUESTS": 8})
    assert result.returncode == 0, result.stderr
    assert result.scalar("SELECT COUNT(*) FROM items") == 4000
    outcomes = sandbox.stats()["outcomes"]
    for kind in ("5xx", "timeout", "truncated", "garbled", "isp", "ban"):
        assert outcomes.get(kind, 0) > 0, (kind, outcomes)
    calls = [json.loads(line) for line in call_log.read_text().splitlines()]
    episodes: dict[tuple[str, float], float] = {}
    for call in calls:
        if call["outcome"] == "ban":
            episodes.setdefault((call["method"], round(call["ban_until"], 3)), call["t"])
    assert episodes
    for (method, until), start in episodes.items():
        # Calls already in flight when the ban began may still arrive; none may be sent after.
        late = [c for c in calls if c["method"] == method and start + 0.5 < c["t"] < until - 0.01]
        assert late == [], (method, start, until, late[:3])
    assert result.query("SELECT status FROM runs") == [("complete",)]
    assert "ban wait" in result.log


def test_bad_items_land_in_rejects_with_reasons(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(
        "--items", "400", "--seed", "17", "--invalid-items", "10", "--isv-items", "2", "--vanish-items", "3"
    )  # fmt: skip
    result = crawl(sandbox.url, tmp_path)
    assert result.returncode == 0, result.stderr
    reasons = [reason for (reason,) in result.query("SELECT reason FROM rejects")]
    assert len(reasons) == 15
    assert sum(r.startswith("invalid/") for r in reasons) == 10
    assert sum(r.startswith("detail/isv.") for r in reasons) == 2
    assert sum(r.startswith("detail/missing") for r in reasons) == 3
    assert {r.split(":")[0] for r in reasons} >= {"invalid/price", "invalid/title", "invalid/num"}
    assert result.scalar("SELECT COUNT(*) FROM items") == 385
    planted = sandbox.bad_items()
    bad = {int(n) for kind in ("invalid", "isv", "vanish") for n in planted[kind]}
    assert {n for (n,) in result.query("SELECT num_iid FROM rejects")} == bad
    assert result.query("SELECT items_rejected, items_missing, status FROM runs") == [(12, 3, "complete")]


def test_feed_exports_jsonl_and_csv(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "300", "--seed", "19")
    jsonl = crawl(sandbox.url, tmp_path, extra_args=("-O", "items.jsonl"))
    assert jsonl.returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(rows) == 300 and len({r["num_iid"] for r in rows}) == 300
    assert all(isinstance(r["price"], str) and isinstance(r["price_fen"], int) for r in rows)
    assert all("+08:00" in r["modified"] for r in rows)
    csv_run = crawl(sandbox.url, tmp_path, extra_args=("-O", "items.csv"))
    assert csv_run.returncode == 0
    lines = (tmp_path / "items.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("platform,seller_id,num_iid") and len(lines) >= 301


def test_two_crawl_processes_share_one_sqlite_file(sandbox_factory, tmp_path):
    import subprocess

    from shopcrawl.sandbox.local import crawl_command, crawl_env

    sandbox = sandbox_factory("--items", "1500", "--seed", "23")
    env = crawl_env(sandbox.url, f"sqlite:///{tmp_path / 'shared.db'}", {"SHOPCRAWL_STORE_BATCH": "50"})
    procs = [
        subprocess.Popen(crawl_command("demo", {"LOG_LEVEL": "WARNING"}), env=env, cwd=tmp_path)
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    result = crawl(sandbox.url, tmp_path, db_name="shared.db")  # a third run, after the two
    assert result.scalar("SELECT COUNT(*) FROM items") == 1500
    assert result.query("SELECT status, items_stored FROM runs") == [("complete", 1500)] * 3
    per_run = result.query("SELECT COUNT(*) FROM observations GROUP BY run_id")
    assert per_run == [(_skus_total(sandbox.shop()),)] * 3


@pytest.mark.parametrize("sign_method", ["md5", "hmac", "hmac-sha256"])
def test_every_sign_method_crawls_the_sandbox(sandbox_factory, tmp_path, sign_method):
    sandbox = sandbox_factory("--items", "250", "--seed", "29")
    result = crawl(sandbox.url, tmp_path, env={"SHOPCRAWL_SIGN_METHOD": sign_method})
    assert result.returncode == 0, result.stderr
    assert result.scalar("SELECT COUNT(*) FROM items") == 250

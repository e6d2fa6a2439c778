"""End to end: `scrapy crawl shop -a api=gateway` against the real sandbox's gateway, into SQLite.

Small caps keep it fast: 20 items a page, 10 pages a query (a depth cap of 200 items)."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import time

from shopcrawl.sandbox.local import crawl_command, crawl_env
from tests.conftest import crawl
from tests.test_distributed import _dump, _wait, _wait_until_stored

PAGE, PAGES = 20, 10
CAP = ("--gateway-page-size", str(PAGE), "--gateway-max-pages", str(PAGES))
KEY, SECRET = "gw-key-Kq7Z3", "gw-secret-Xv9P2"
GATEWAY_1688 = ("-a", "api=gateway", "-a", "platform=1688")


def gateway_crawl(sandbox, tmp_path, platform, **kwargs):
    args = ("-a", "api=gateway", "-a", f"platform={platform}")
    started = time.monotonic()
    result = crawl(sandbox.base, tmp_path, extra_args=args, **kwargs)
    result.seconds = time.monotonic() - started
    return result


def _check_complete(sandbox, result, items: int, budget_pages: int) -> dict:
    assert result.returncode == 0, result.stderr + result.log[-3000:]
    stats = sandbox.stats()
    calls = stats["calls"]
    floor = math.ceil(items / PAGE)
    assert calls["item_search_shop"] <= 1.2 * floor + 5, calls
    assert calls["item_get"] == items == result.scalar("SELECT COUNT(DISTINCT num_iid) FROM items")
    assert stats["outcomes"] == {"ok": sum(calls.values())}
    assert result.query("SELECT status, coverage, declared_total FROM runs") == [("complete", 1.0, items)]
    truth = {item["num_iid"]: item for item in sandbox.shop()}
    stored = dict(result.query("SELECT num_iid, price FROM items"))
    assert stored == {num_iid: item["price"] for num_iid, item in truth.items()}
    print(  # the measured numbers (pytest -s shows them)
        f"{items} items: listing calls {calls['item_search_shop']} (floor {floor}), "
        f"item_get {calls['item_get']}, {items / result.seconds:.0f} items/s"
    )
    return calls


def test_a_1688_shop_five_times_the_depth_cap_is_walked_by_price_to_100_percent(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "1000", "--seed", "21", *CAP)
    result = gateway_crawl(sandbox, tmp_path, "1688")
    _check_complete(sandbox, result, 1000, PAGES)
    assert result.scalar("SELECT platform FROM runs") == "1688"
    tiers = result.scalar("SELECT COUNT(*) FROM items WHERE price_tiers != '[]'")
    assert tiers == 1000 and result.scalar("SELECT COUNT(*) FROM items WHERE min_order_quantity >= 1") == 1000


def test_a_taobao_shop_twice_the_depth_cap_is_reached_by_bid_and_its_reverse(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "400", "--seed", "22", *CAP)
    result = gateway_crawl(sandbox, tmp_path, "taobao")
    calls = _check_complete(sandbox, result, 400, PAGES)
    assert calls["item_search_shop"] == 20
    assert result.scalar("SELECT platform FROM runs") == "taobao"


def test_a_taobao_shop_the_gateway_cannot_list_ends_incomplete_with_the_reason(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "800", "--seed", "23", *CAP)
    result = gateway_crawl(sandbox, tmp_path, "taobao")
    assert result.returncode == 3, result.stderr
    status, coverage, reason = result.query("SELECT status, coverage, reason FROM runs")[0]
    assert status == "incomplete" and 0.5 < coverage < 1
    assert reason.startswith("the gateway's depth cap (10 pages of 20 items per query) and its sort orders")
    summary = next(line for line in result.log.splitlines() if " INCOMPLETE: " in line)
    assert "of 800 items" in summary and "depth cap" in summary
    calls = sandbox.stats()["calls"]
    assert calls["item_get"] == result.scalar("SELECT COUNT(*) FROM items") < 800


def test_two_workers_over_redis_crawl_a_1688_shop_to_100_percent(sandbox_factory, tmp_path, redis_url):
    sandbox = sandbox_factory(
        "--items", "600", "--seed", "24", *CAP, "--app-key", KEY, "--app-secret", SECRET
    )
    env = crawl_env(
        sandbox.base,
        f"sqlite:///{tmp_path / 'shop.db'}",
        {
            "REDIS_URL": redis_url,
            "SHOPCRAWL_APP_KEY": KEY,
            "SHOPCRAWL_APP_SECRET": SECRET,
            "SHOPCRAWL_QPS": "150",
        },
    )
    procs = [
        subprocess.Popen(
            crawl_command("demo", {"LOG_FILE": tmp_path / f"w{k}.log", "LOG_LEVEL": "DEBUG"}, *GATEWAY_1688),
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for k in range(2)
    ]  # fmt: skip
    _wait_until_stored(tmp_path / "shop.db", 100)
    mid_crawl = _dump(redis_url)
    assert _wait(procs) == [0, 0]
    calls = sandbox.stats()["calls"]
    assert calls["item_get"] == 600 and calls["item_search_shop"] <= 1.2 * 30 + 5
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        assert conn.execute("SELECT status, coverage FROM runs").fetchall() == [("complete", 1.0)]
    logs = "".join((tmp_path / f"w{k}.log").read_text() for k in range(2))
    for text in (mid_crawl, _dump(redis_url), logs):
        assert KEY not in text and SECRET not in text
    # The queue held gateway calls, unsigned (listing calls, or by then only item_get ones).
    assert "/1688/item_search_shop/" in mid_crawl or "/1688/item_get/" in mid_crawl


def test_no_key_or_secret_reaches_output_store_or_export_even_at_debug(sandbox_factory, tmp_path):
    """Retries of every kind (5xx, a download timeout, 4000-4002, truncated bodies), an item that is
    gone, then a fatal 4005: neither the key nor the secret is in stdout/stderr, the store or the export."""
    sandbox = sandbox_factory(
        "--items", "150", "--seed", "25", *CAP, "--app-key", KEY, "--app-secret", SECRET,
        "--rate-5xx", "0.05", "--rate-timeout", "0.02", "--timeout-delay", "3", "--rate-isp", "0.05",
        "--rate-truncated", "0.03", "--rate-garbled", "0.02", "--vanish-items", "2",
    )  # fmt: skip
    export = tmp_path / "items.jsonl"
    db = tmp_path / "shop.db"
    env = crawl_env(
        sandbox.base, f"sqlite:///{db}", {"SHOPCRAWL_APP_KEY": KEY, "SHOPCRAWL_APP_SECRET": SECRET}
    )
    settings = {"LOG_LEVEL": "DEBUG", "DOWNLOAD_TIMEOUT": 1, "SHOPCRAWL_BACKOFF_BASE": 0.05, "RETRY_TIMES": 8}
    args = crawl_command(
        "demo", settings, "-a", "api=gateway", "-a", "platform=taobao", "-o", f"{export}:jsonlines"
    )
    proc = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    outcomes = sandbox.stats()["outcomes"]
    assert {"5xx", "timeout", "isp", "truncated", "not_found"} <= outcomes.keys(), outcomes
    assert "TimeoutError" in proc.stderr and "Retrying <GET" in proc.stderr
    wrong = "gw-secret-WRONG-4k"
    bad_env = {**env, "SHOPCRAWL_APP_SECRET": wrong}
    fatal = subprocess.run(args[:-2], env=bad_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert fatal.returncode != 0 and "4005" in fatal.stderr and "SHOPCRAWL_APP_SECRET" in fatal.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    texts = [
        proc.stdout,
        proc.stderr,
        fatal.stdout,
        fatal.stderr,
        export.read_text(),
        db.read_bytes().decode("latin-1"),
    ]
    assert len(export.read_text().splitlines()) == 148
    for text in texts:
        for secret in (KEY, SECRET, wrong):
            assert secret not in text
    rejects = [json.loads(line) for line in export.read_text().splitlines()]
    assert all("key" not in item.get("extras", {}) for item in rejects)


def test_over_redis_an_unlistable_shop_ends_incomplete_with_the_reason_whoever_closes(
    sandbox_factory, tmp_path, redis_url
):
    """The worker whose listing ran out may not be the one that closes the run: the reason is shared.
    The closing worker exits with the run's status (3); the others finished their share (0)."""
    from tests.test_distributed import SECRET as WORKER_SECRET
    from tests.test_distributed import _workers

    sandbox = sandbox_factory("--items", "800", "--seed", "23", *CAP, "--app-secret", WORKER_SECRET)
    env = {"SHOPCRAWL_API": "gateway", "SHOPCRAWL_PLATFORM": "taobao"}
    procs = _workers(sandbox.base, tmp_path, redis_url, 3, env=env)
    assert sorted(_wait(procs)) == [0, 0, 3]
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        ((status, coverage, reason),) = conn.execute("SELECT status, coverage, reason FROM runs").fetchall()
    assert status == "incomplete" and 0.5 < coverage < 1
    assert reason.startswith("the gateway's depth cap (10 pages of 20 items per query) and its sort orders")

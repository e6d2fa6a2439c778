"""`shopcrawl worker` end to end against the sandbox and a real Redis: jobs crawled to complete runs one
after another in one process, SIGTERM handing the job back for the next worker to finish the same run,
and a failing job retried and then parked where `status` shows it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from shopcrawl.sandbox.local import crawl_env

TIMEOUT = 120


def store_grants(path: Path, shops: list[dict]) -> None:
    """Each sandbox shop's own session in a credentials file, as `shopcrawl auth login` would store it."""
    from shopcrawl.auth.grants import CredentialsFile, Grant

    far = time.time() + 365 * 86400
    grants = [
        Grant(
            api="top",
            app_key="sandbox-app-key",
            seller=s["seller"],
            access_token=s["session"],
            expires_at=far,
            nick=s["seller"],
            obtained_at=time.time(),
        )
        for s in shops
    ]
    CredentialsFile(path).save(grants)


def fleet_env(sandbox, tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    return crawl_env(
        sandbox.url,
        f"sqlite:///{tmp_path / 'shop.db'}",
        {"REDIS_URL": redis_url, "SHOPCRAWL_PROGRESS_INTERVAL": "0", **extra},
    )


def shopcrawl(env, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopcrawl.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def worker(env, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log = tmp_path / f"worker-{len(list(tmp_path.glob('worker-*.log')))}.log"
    command = [sys.executable, "-m", "shopcrawl.cli", "worker", "-s", f"LOG_FILE={log}", *args]
    return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], timeout: float = TIMEOUT) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    return process.returncode, err.decode()


def runs(tmp_path: Path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        return conn.execute("SELECT run_id, status, coverage FROM runs ORDER BY started_at").fetchall()


def fleet(env) -> dict:
    result = shopcrawl(env, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["fleet"]


def test_a_worker_crawls_job_after_job_in_one_process(sandbox_factory, tmp_path, redis_url):
    sandbox = sandbox_factory("--items", "600", "--seed", "21")
    env = fleet_env(sandbox, tmp_path, redis_url)
    assert shopcrawl(env, "enqueue", "--seller", "demo", "--mode", "full").returncode == 0
    again = shopcrawl(env, "enqueue", "--seller", "demo")
    assert again.returncode == 1 and "already has a job" in again.stdout
    process = worker(env, tmp_path, "--max-jobs", "2")
    deadline = time.monotonic() + TIMEOUT
    while (
        not (tmp_path / "shop.db").exists() or len(runs(tmp_path)) < 1 or runs(tmp_path)[0][1] != "complete"
    ):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    assert shopcrawl(env, "enqueue", "--seller", "demo").returncode == 0  # the first job is over
    code, err = finish(process)
    assert code == 0, err
    assert [(status, coverage) for _, status, coverage in runs(tmp_path)] == [("complete", 1.0)] * 2
    (shop,) = fleet(env)["shops"]
    assert (shop["state"], shop["last_status"]) == ("idle", "complete")
    assert shop["last_complete_run"] == runs(tmp_path)[1][0] and shop["last_complete_age"] < 60
    calls = sandbox.stats()["calls"]
    assert calls["taobao.items.onsale.get"] == 2 * 3  # a full crawl, then an incremental one: 3 pages each


def test_sigterm_hands_the_job_back_and_the_next_worker_finishes_the_same_run(
    sandbox_factory, tmp_path, redis_url
):
    sandbox = sandbox_factory("--items", "2000", "--seed", "22")
    env = fleet_env(sandbox, tmp_path, redis_url, SHOPCRAWL_QPS="20")  # 110 calls: about 6 s
    shopcrawl(env, "enqueue", "--seller", "demo")
    first = worker(env, tmp_path)
    deadline = time.monotonic() + TIMEOUT
    while sandbox.stats()["calls"].get("taobao.items.seller.list.get", 0) < 20:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    first.terminate()
    code, err = finish(first)
    assert code == 0, err
    assert [(status) for _, status, _ in runs(tmp_path)] == ["running"]
    assert fleet(env)["queue_depth"] == 1  # handed back
    second = worker(env, tmp_path, "--max-jobs", "1")
    code, err = finish(second)
    assert code == 0, err
    ((_, status, coverage),) = runs(tmp_path)  # the same run, finished
    assert (status, coverage) == ("complete", 1.0)
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 2000


def test_a_failing_job_is_retried_then_parked_and_enqueue_unparks_it(sandbox_factory, tmp_path, redis_url):
    sandbox = sandbox_factory("--items", "100", "--seed", "23")
    env = fleet_env(
        sandbox,
        tmp_path,
        redis_url,
        SHOPCRAWL_APP_SECRET="wrong",
        SHOPCRAWL_JOB_RETRIES="1",
        SHOPCRAWL_JOB_BACKOFF="0",
    )
    shopcrawl(env, "enqueue", "--seller", "demo")
    code, err = finish(worker(env, tmp_path, "--max-jobs", "2"))
    assert code == 0, err
    status = fleet(env)
    (parked,) = status["parked"]
    assert parked["shop"] == "top|taobao|demo" and parked["attempts"] == 2
    assert "signature" in parked["reason"] and "SHOPCRAWL_APP_SECRET" in parked["reason"]
    assert [s["state"] for s in status["shops"]] == ["parked"]
    text = shopcrawl(env, "status")
    assert "parked: top|taobao|demo after 2 attempts" in text.stdout
    unparked = shopcrawl({**env, "SHOPCRAWL_APP_SECRET": "sandbox-app-secret"}, "enqueue", "--seller", "demo")
    assert unparked.returncode == 0 and "unparked" in unparked.stdout
    fixed = fleet_env(sandbox, tmp_path, redis_url)
    code, err = finish(worker(fixed, tmp_path, "--max-jobs", "1"))
    assert code == 0, err
    assert fleet(fixed)["parked"] == [] and runs(tmp_path)[-1][1] == "complete"


def test_a_big_shop_does_not_hold_up_the_small_ones_queued_behind_it(sandbox_factory, tmp_path, redis_url):
    from datetime import datetime

    sandbox = sandbox_factory("--items", "20000", "--seed", "24", "--shops", "4", "--shop-items", "200-400")
    credentials = tmp_path / "conf" / "credentials.json"
    store_grants(credentials, sandbox.shops())
    env = fleet_env(
        sandbox,
        tmp_path,
        redis_url,
        SHOPCRAWL_SESSION="",
        SHOPCRAWL_CREDENTIALS=str(credentials),
        SHOPCRAWL_QPS="100",
    )  # the big shop's 1,100 calls take 11 s or more
    for seller in ["demo"] + [f"shop-00{n}" for n in range(1, 5)]:  # the big shop first
        assert shopcrawl(env, "enqueue", "--seller", seller).returncode == 0
    code, err = finish(worker(env, tmp_path, "--slots", "2", "--max-jobs", "5"))
    assert code == 0, err
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        ended = dict(
            conn.execute("SELECT seller_id, finished_at FROM runs WHERE status = 'complete'").fetchall()
        )
    assert len(ended) == 5
    big = datetime.fromisoformat(ended.pop("demo"))
    assert all(datetime.fromisoformat(at) < big for at in ended.values()), ended  # done while it ran

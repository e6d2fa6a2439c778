"""Authorisation end to end against the sandbox's OAuth emulation: a login through the loopback
redirect, a token that expires mid-crawl refreshed exactly once (TOP, 1688, and 3 workers over Redis),
a session that cannot be refreshed warned about 7 days ahead, a revoked refresh token stopping the
crawl with the login hint, an unsafe credentials file refused, scheduled runs across expiries with no
person, and no token in a DEBUG log, in Redis or in the store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from shopcrawl.sandbox.local import crawl_env
from tests.conftest import crawl
from tests.services import line_where
from tests.webhook_receiver import webhook_receiver

APIS: dict[str, tuple[str, ...]] = {"top": (), "1688": ()}  # the sandbox serves both APIs at once


def api_url(sandbox, api: str) -> str:
    return sandbox.url if api == "top" else f"{sandbox.base}/openapi"


def auth_env(sandbox, api: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of `shopcrawl auth` and of a crawl that uses the stored grant."""
    return crawl_env(
        api_url(sandbox, api),
        f"sqlite:///{tmp_path / 'shop.db'}",
        {
            "SHOPCRAWL_SESSION": "",  # empty: unset, so the credentials file is used
            "SHOPCRAWL_API": api,
            "SHOPCRAWL_CREDENTIALS": str(tmp_path / "conf" / "credentials.json"),
            "SHOPCRAWL_OAUTH_URL": f"{sandbox.base}/oauth/{api}",
            **extra,
        },
    )


def shopcrawl(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shopcrawl.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def login(env: dict[str, str], api: str) -> str:
    """`shopcrawl auth login --listen 127.0.0.1:0`, with the browser's part done by urllib: open the
    printed URL, follow the sandbox's redirect to the listener. Returns the login's output."""
    args = ["auth", "login", "--api", api, "--listen", "127.0.0.1:0", "--timeout", "60"]
    process = subprocess.Popen(
        [sys.executable, "-m", "shopcrawl.cli", *args], env=env, stdout=subprocess.PIPE
    )
    try:
        url = line_where(process, 30, lambda line: line.startswith("http"))  # the authorise URL
        with urllib.request.urlopen(url, timeout=30) as page:  # the 302 lands on the listener
            assert page.status == 200 and b"authorised" in page.read()
        assert process.wait(timeout=30) == 0
        assert process.stdout is not None
        return process.stdout.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def status(env: dict[str, str]) -> list[dict]:
    result = shopcrawl(env, "auth", "status", "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)["grants"]


def stored_tokens(env: dict[str, str]) -> set[str]:
    grants = json.loads(Path(env["SHOPCRAWL_CREDENTIALS"]).read_text())["grants"]
    return {g[k] for g in grants for k in ("access_token", "refresh_token") if g[k]}


@pytest.mark.parametrize("api", ["top", "1688"])
def test_a_login_through_the_loopback_redirect_stores_a_grant_a_crawl_uses(sandbox_factory, tmp_path, api):
    sandbox = sandbox_factory("--items", "300", "--seed", "5", *APIS[api])
    env = auth_env(sandbox, api, tmp_path)
    output = login(env, api)
    assert "Authorised" in output and "demo" in output
    path = Path(env["SHOPCRAWL_CREDENTIALS"])
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    tokens = stored_tokens(env)
    assert len(tokens) == 2 and not any(token in output for token in tokens)
    (grant,) = status(env)
    assert (grant["api"], grant["nick"], grant["refreshable"], grant["state"]) == (api, "demo", True, "ok")
    assert sandbox.oauth()["calls"]["authorization_code"] == 1
    text = shopcrawl(env, "auth", "status")
    assert "demo" in text.stdout and not any(token in text.stdout for token in tokens)
    result = crawl(env["SHOPCRAWL_API_URL"], tmp_path, env=_crawl_env(env))
    assert result.returncode == 0, result.stderr
    assert result.scalar("SELECT status FROM runs") == "complete"
    assert result.scalar("SELECT COUNT(*) FROM items") == 300
    assert sandbox.oauth()["calls"]["refresh_token"] == 0  # a day-long token needs no refresh


def _crawl_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**{k: v for k, v in env.items() if k.startswith("SHOPCRAWL_")}, **extra}


@pytest.mark.parametrize(
    ("api", "items", "qps"),
    [("top", "1200", "4"), ("1688", "300", "20")],  # 66 and 315 calls: about 16 s, past the 10 s token
)
def test_a_token_expiring_mid_crawl_is_refreshed_once_and_the_crawl_completes(
    sandbox_factory, tmp_path, api, items, qps
):
    sandbox = sandbox_factory("--items", items, "--seed", "9", "--token-ttl", "10", *APIS[api])
    env = auth_env(sandbox, api, tmp_path)
    login(env, api)
    sandbox.oauth_control(token_ttl=3600)  # the refreshed token outlives the crawl
    first = stored_tokens(env)
    result = crawl(
        env["SHOPCRAWL_API_URL"],
        tmp_path,
        env=_crawl_env(env, SHOPCRAWL_TOKEN_MIN_TTL="0", SHOPCRAWL_QPS=qps),
        settings={"LOG_LEVEL": "DEBUG"},
    )
    assert result.returncode == 0, result.stderr
    oauth = sandbox.oauth()
    assert oauth["calls"]["refresh_token"] == 1
    assert oauth["expired_answers"] >= 1, (
        "the token did not expire during the crawl (the crawl started late?)"
    )
    assert result.scalar("SELECT status FROM runs") == "complete"
    assert result.scalar("SELECT COUNT(*) FROM items") == int(items)
    assert "Refreshed the" in result.log
    tokens = first | stored_tokens(env)
    assert len(tokens) >= 3
    _no_token_in(tokens, result.log, result.stderr, tmp_path / "shop.db")


def _no_token_in(tokens: set[str], *places: str | Path) -> None:
    for place in places:
        text = place.read_bytes().decode("utf-8", "replace") if isinstance(place, Path) else place
        leaked = [t for t in tokens if t in text]
        assert not leaked, f"a token reached {place if isinstance(place, Path) else 'a log'}"


def test_three_workers_share_one_refresh_and_no_token_reaches_redis_logs_or_store(
    sandbox_factory, tmp_path, redis_url
):
    from tests.test_distributed import _wait

    sandbox = sandbox_factory("--items", "1200", "--seed", "13", "--token-ttl", "10")
    env = auth_env(sandbox, "top", tmp_path)
    login(env, "top")
    sandbox.oauth_control(token_ttl=3600)
    first = stored_tokens(env)
    full_env = {**env, "REDIS_URL": redis_url, "SHOPCRAWL_TOKEN_MIN_TTL": "0", "SHOPCRAWL_QPS": "4"}
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scrapy",
                "crawl",
                "shop",
                "-a",
                "seller_id=demo",
                "-s",
                f"LOG_FILE={log}",
                "-s",
                "LOG_LEVEL=DEBUG",
            ],
            env=full_env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for log in logs
    ]
    try:
        codes = _wait(procs, timeout=240)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    stderr = ""
    for p in procs:
        assert p.stderr is not None
        stderr += p.stderr.read().decode()
        p.stderr.close()
    assert codes == [0, 0, 0], stderr
    oauth = sandbox.oauth()
    # TOP rotates the refresh token: a second refresh with the old one would have been refused.
    assert oauth["calls"]["refresh_token"] == 1 and oauth["expired_answers"] >= 1
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("complete",)]
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 1200
    tokens = first | stored_tokens(env)
    _no_token_in(tokens, stderr, *(log.read_text() for log in logs), tmp_path / "shop.db")
    server = redis.Redis.from_url(redis_url)
    try:
        dump = [key for key in server.scan_iter(count=1000)]
        dump += [server.dump(key) or b"" for key in dump]
    finally:
        server.close()
    assert dump, "the workers left nothing in Redis to check"
    _no_token_in(tokens, b"\n".join(dump).decode("latin-1"))


def test_a_session_that_cannot_be_refreshed_is_reported_and_warned_7_days_ahead(sandbox_factory, tmp_path):
    six_days = str(6 * 86400)
    sandbox = sandbox_factory("--items", "200", "--seed", "4", "--refresh-ttl", "0", "--token-ttl", six_days)
    env = auth_env(sandbox, "top", tmp_path)
    output = login(env, "top")
    assert "cannot be refreshed" in output
    (grant,) = status(env)
    assert (grant["refreshable"], grant["state"]) == (False, "expiring")
    assert grant["warning"].startswith(
        "the TOP session of seller demo (app sandbox-app-key) cannot be refreshed"
    )
    assert "expires in 5 d 23 h" in grant["warning"] and "shopcrawl auth login --api top" in grant["warning"]
    text = shopcrawl(env, "auth", "status")
    assert text.returncode == 0 and "warning: the TOP session of seller demo" in text.stdout
    with webhook_receiver() as receiver:
        for _ in range(2):  # the webhook hears of it once a day, not once per crawl
            result = crawl(sandbox.url, tmp_path, env=_crawl_env(env, SHOPCRAWL_ALERT_WEBHOOK=receiver.url))
            assert result.returncode == 0, result.stderr
            assert "Authorisation: the TOP session of seller demo" in result.log
        bodies = [b for b in receiver.bodies() if b.get("event") == "credential_expiring"]
    assert len(bodies) == 1
    assert bodies[0]["seller"] == "demo" and "cannot be refreshed" in bodies[0]["text"]
    _no_token_in(stored_tokens(env), json.dumps(bodies))
    refresh = shopcrawl(env, "auth", "refresh")
    assert refresh.returncode == 0 and "cannot be refreshed" in refresh.stdout
    assert sandbox.oauth()["calls"]["refresh_token"] == 0


def test_a_revoked_refresh_token_stops_the_crawl_with_the_login_hint(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "1200", "--seed", "6")
    env = auth_env(sandbox, "top", tmp_path)
    login(env, "top")
    sandbox.oauth_control(revoke_refresh=True)  # the seller cancelled the grant
    db = tmp_path / "shop.db"
    args = [sys.executable, "-m", "scrapy", "crawl", "shop", "-a", "seller_id=demo"]
    process = subprocess.Popen(
        args, env={**env, "SHOPCRAWL_QPS": "20"}, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        from tests.test_distributed import _wait_until_stored

        _wait_until_stored(db, 100, timeout=120)
        sandbox.oauth_control(expire_access=True)  # the session expires mid-crawl
        _out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 1
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("shopcrawl stopped: refreshing the TOP session of seller demo was refused")
    assert last.endswith("run shopcrawl auth login --api top")
    assert sandbox.oauth()["calls"]["refresh_token"] == 1


def test_an_expired_1688_token_whose_refresh_is_revoked_stops_before_the_crawl(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "100", "--seed", "6")
    env = auth_env(sandbox, "1688", tmp_path)
    login(env, "1688")
    sandbox.oauth_control(revoke_refresh=True)
    # With the default SHOPCRAWL_TOKEN_MIN_TTL of 30 min, a day-long token is not due; 2 days is.
    result = crawl(env["SHOPCRAWL_API_URL"], tmp_path, env=_crawl_env(env, SHOPCRAWL_TOKEN_MIN_TTL="2d"))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("shopcrawl stopped: refreshing the 1688 access token of seller b2b-")
    assert last.endswith(": run shopcrawl auth login --api 1688")
    assert "was refused (invalid_grant" in result.stderr
    assert sandbox.stats()["calls"] == {}  # nothing was sent to the API


def test_a_credentials_file_with_mode_0644_is_refused(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "50", "--seed", "2")
    env = auth_env(sandbox, "top", tmp_path)
    login(env, "top")
    path = Path(env["SHOPCRAWL_CREDENTIALS"])
    path.chmod(0o644)
    result = crawl(sandbox.url, tmp_path, env=_crawl_env(env))
    assert result.returncode == 2
    assert "has mode 0644" in result.stderr and f"chmod 600 {path}" in result.stderr
    assert sandbox.stats()["calls"] == {}
    for command in (
        ("auth", "status"),
        ("auth", "refresh"),
        ("auth", "login", "--api", "top", "--code", "x", "--redirect-uri", "http://127.0.0.1:1/cb"),
    ):
        refused = shopcrawl(env, *command)
        assert refused.returncode == 2 and "chmod 600" in refused.stderr, command


def test_three_scheduled_runs_across_two_token_expiries_need_no_person(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "400", "--seed", "8", "--token-ttl", "8")
    env = auth_env(sandbox, "top", tmp_path)
    login(env, "top")
    for run in range(3):
        if run:  # the token the last run left has expired before this run starts
            (_grant,) = status(env)
            deadline = time.monotonic() + 30
            while status(env)[0]["expires_in"] > 0:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        result = crawl(sandbox.url, tmp_path, env=_crawl_env(env))  # SHOPCRAWL_TOKEN_MIN_TTL 30 min > 8 s
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("complete",)] * 3
    assert sandbox.oauth()["calls"] == {
        **sandbox.oauth()["calls"],
        "authorization_code": 1,
        "refresh_token": 3,
    }


def test_a_1688_refresh_token_near_its_timeout_is_renewed_with_postpone_token(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "50", "--seed", "3", "--refresh-ttl", str(10 * 86400))
    env = auth_env(sandbox, "1688", tmp_path)
    login(env, "1688")
    (before,) = status(env)
    sandbox.oauth_control(refresh_ttl=180 * 86400)  # what postponeToken grants from now on
    result = crawl(env["SHOPCRAWL_API_URL"], tmp_path, env=_crawl_env(env))  # 10 days left: under 30
    assert result.returncode == 0, result.stderr
    (after,) = status(env)
    calls = sandbox.oauth()["calls"]
    assert (calls["postpone"], calls["refresh_token"]) == (1, 0)  # the access token was still fresh
    assert before["refresh_expires_at"] < after["refresh_expires_at"]
    renewed_until = (
        time.mktime(time.strptime(after["refresh_expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    )
    assert renewed_until > time.time() + 170 * 86400 and after["state"] == "ok"
    again = crawl(env["SHOPCRAWL_API_URL"], tmp_path, env=_crawl_env(env))
    assert again.returncode == 0 and sandbox.oauth()["calls"]["postpone"] == 1  # far from its timeout now


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_a_pasted_redirect_url_must_carry_the_login_state(sandbox_factory, tmp_path):
    """Without --listen: the seller lands on the registered callback, and the operator pastes the URL."""
    sandbox = sandbox_factory("--items", "50", "--seed", "2")
    env = auth_env(sandbox, "top", tmp_path)
    args = ["auth", "login", "--api", "top", "--redirect-uri", "https://shop.example/cb"]
    for tamper, code in ((True, 2), (False, 0)):
        process = subprocess.Popen(
            [sys.executable, "-m", "shopcrawl.cli", *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            url = line_where(process, 30, lambda line: line.startswith("http"))
            try:
                urllib.request.build_opener(_NoRedirect()).open(url, timeout=30)
            except urllib.error.HTTPError as redirect:  # the 302 the browser would follow
                landed = redirect.headers["Location"]
                redirect.close()
            assert landed.startswith("https://shop.example/cb?code=")
            if tamper:
                landed = landed.replace("state=", "state=x")
            out, err = process.communicate(landed.encode() + b"\n", timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        assert process.returncode == code, err
        if tamper:
            assert b"belongs to another login" in err and not Path(env["SHOPCRAWL_CREDENTIALS"]).exists()
        else:
            assert b"Authorised TOP seller demo" in out
            _no_token_in(stored_tokens(env), out.decode())
    assert [g["nick"] for g in status(env)] == ["demo"]

"""What a user sees when something is wrong: fast, one clear line, a non-zero exit, no secret leaked."""

from __future__ import annotations

import time

from tests.conftest import CREDENTIALS, crawl


def test_wrong_secret_stops_at_once_naming_the_setting(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "500")
    started = time.monotonic()
    result = crawl(sandbox.url, tmp_path, env={"SHOPCRAWL_APP_SECRET": "not-the-secret"})
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("shopcrawl stopped:")]
    assert len(lines) == 1 and "25" in lines[0] and "SHOPCRAWL_APP_SECRET" in lines[0]
    assert sum(sandbox.stats()["calls"].values()) == 1
    assert result.query("SELECT status FROM runs") == [("failed",)]


def test_wrong_session_stops_at_once_naming_the_setting(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "500")
    result = crawl(sandbox.url, tmp_path, env={"SHOPCRAWL_SESSION": "expired-session"})
    assert result.returncode == 1
    assert "27" in result.stderr and "SHOPCRAWL_SESSION" in result.stderr
    assert sum(sandbox.stats()["calls"].values()) == 1


def test_unknown_app_key_is_fatal(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "50")
    result = crawl(sandbox.url, tmp_path, env={"SHOPCRAWL_APP_KEY": "12345"})
    assert result.returncode == 1 and "SHOPCRAWL_APP_KEY" in result.stderr


def test_missing_credentials_fail_before_any_request(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "50")
    result = crawl(sandbox.url, tmp_path, env={"SHOPCRAWL_SESSION": "", "SHOPCRAWL_APP_SECRET": ""})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "shopcrawl: missing credentials: set SHOPCRAWL_APP_SECRET (env var or -s NAME=VALUE) before crawling"
    )
    # No session and no stored login: the line names both ways to give one.
    credentials = tmp_path / "none" / "credentials.json"
    result = crawl(
        sandbox.url, tmp_path, env={"SHOPCRAWL_SESSION": "", "SHOPCRAWL_CREDENTIALS": str(credentials)}
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"shopcrawl: no TOP authorisation for app sandbox-app-key in {credentials}; "
        "run shopcrawl auth login --api top (or set SHOPCRAWL_SESSION)"
    )
    assert sandbox.stats()["calls"] == {}


def test_bad_setting_is_named(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "50")
    result = crawl(sandbox.url, tmp_path, env={"SHOPCRAWL_SIGN_METHOD": "sha1"})
    assert result.returncode == 2 and "SHOPCRAWL_SIGN_METHOD" in result.stderr
    assert sandbox.stats()["calls"] == {}


def test_a_quota_ban_longer_than_the_max_wait_is_fatal(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "50", "--quota-ban-seconds", "31062")
    started = time.monotonic()
    result = crawl(sandbox.url, tmp_path)
    assert time.monotonic() - started < 15
    assert result.returncode == 1 and "SHOPCRAWL_MAX_BAN_WAIT" in result.stderr


def test_no_secret_reaches_a_debug_log_the_store_or_an_export(sandbox_factory, tmp_path):
    secret, session = "s3cr3t-sentinel-XYZ", "sess-sentinel-QRS"
    sandbox = sandbox_factory(
        "--items", "300", "--app-secret", secret, "--session", session, "--rate-5xx", "0.05"
    )
    result = crawl(
        sandbox.url,
        tmp_path,
        env={"SHOPCRAWL_APP_SECRET": secret, "SHOPCRAWL_SESSION": session, "SHOPCRAWL_LOG_LEVEL": "DEBUG"},
        settings={"LOG_LEVEL": "DEBUG"},
        extra_args=("-O", "items.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.log and "Crawled (200)" in result.log
    haystacks = {
        "log": result.log,
        "stderr": result.stderr,
        "export": (tmp_path / "items.jsonl").read_text(),
        "store": result.db.read_bytes().decode("utf-8", "replace")
        + "".join(p.read_bytes().decode("utf-8", "replace") for p in tmp_path.glob("shop.db-*")),
    }
    for name, text in haystacks.items():
        assert secret not in text, name
        assert session not in text, name
        assert "sign=" not in text and "sign_method" not in text, name
    assert CREDENTIALS["SHOPCRAWL_APP_KEY"] not in result.log.replace("sandbox-app-key", "")

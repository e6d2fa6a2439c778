"""The credentials file and the token answers: mode 0600 written atomically, looser files refused, one
grant per (api, app key, seller), expiry states and warnings, and both platforms' token answers decoded
exactly (fixtures from api-protocols.md §8)."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from shopcrawl.auth.grants import (
    WARN_AHEAD_SECONDS,
    CredentialsError,
    CredentialsFile,
    Grant,
    credentials_path,
    expiry_warning,
)
from shopcrawl.auth.oauth import AopOAuth, OAuthError, TopOAuth, parse_aop_timeout

NOW = 1_780_000_000.0
DAY = 86400.0


def grant(**changes) -> Grant:
    base = {
        "api": "top",
        "app_key": "k1",
        "seller": "shop-a",
        "access_token": "tok-secret-1",
        "expires_at": NOW + 30 * DAY,
        "refresh_token": "ref-secret-1",
        "refresh_expires_at": NOW + 180 * DAY,
        "user_id": "2200001",
        "nick": "shop-a",
        "obtained_at": NOW,
    }
    return Grant(**{**base, **changes})


@pytest.fixture
def file(tmp_path):
    return CredentialsFile(tmp_path / "conf" / "credentials.json")


def test_a_grant_is_written_with_mode_0600_and_read_back(file):
    file.put(grant())
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.path.parent.stat().st_mode) == 0o700
    assert file.load() == [grant()]
    assert not [p for p in file.path.parent.iterdir() if p.name.startswith(".credentials-")]  # no temp left


def test_one_grant_per_api_app_key_and_seller(file):
    file.put(grant())
    file.put(grant(access_token="tok-secret-2"))  # the same seller again: replaced
    file.put(grant(api="1688", seller="b2b-1"))
    file.put(grant(app_key="k2"))
    assert sorted((g.api, g.app_key, g.seller, g.access_token) for g in file.load()) == [
        ("1688", "k1", "b2b-1", "tok-secret-1"),
        ("top", "k1", "shop-a", "tok-secret-2"),
        ("top", "k2", "shop-a", "tok-secret-1"),
    ]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_others_may_read_is_refused_with_the_fix(file, mode):
    file.put(grant())
    os.chmod(file.path, mode)
    with pytest.raises(CredentialsError, match=f"mode {mode:04o}.*chmod 600 {file.path}"):
        file.load()


def test_a_damaged_file_is_refused_without_showing_its_contents(file):
    file.path.parent.mkdir(parents=True)
    file.path.write_text('{"grants": [{"api": "top", "access_token": "tok-secret-9"}]}')
    os.chmod(file.path, 0o600)
    with pytest.raises(CredentialsError, match="not valid") as info:
        file.load()
    assert "tok-secret-9" not in str(info.value)


def test_the_file_never_shows_a_token_in_a_repr(file):
    assert "tok-secret" not in repr(grant()) and "ref-secret" not in repr(grant())
    assert "tok-secret" not in json.dumps(grant().public(NOW))


def test_a_crawl_finds_its_seller_by_nick_user_id_or_member_id(file):
    file.put(grant(api="1688", seller="b2b-220000a", nick="login-a", user_id="2200"))
    for name in ("b2b-220000a", "login-a", "2200"):
        assert file.find("1688", "k1", name).seller == "b2b-220000a"
    with pytest.raises(
        CredentialsError, match=r"seller 'other'.*authorised: b2b-220000a \(login-a\).*auth login"
    ):
        file.find("1688", "k1", "other")
    with pytest.raises(CredentialsError, match=r"no TOP authorisation for app k1.*auth login --api top"):
        file.find("top", "k1", "x")


def test_the_default_path_is_under_the_user_config_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("SHOPCRAWL_CREDENTIALS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert credentials_path() == tmp_path / "shopcrawl" / "credentials.json"
    monkeypatch.setenv("SHOPCRAWL_CREDENTIALS", str(tmp_path / "x.json"))
    assert credentials_path() == tmp_path / "x.json"
    assert str(credentials_path("/etc/y.json")) == "/etc/y.json"  # the setting wins over the env var


def test_states_and_the_seven_day_warning():
    fixed = grant(refresh_token="", refresh_expires_at=0.0)  # a TOP session that cannot be refreshed
    assert fixed.state(NOW) == "ok" and expiry_warning(fixed, NOW) == ""
    soon = NOW + 30 * DAY - WARN_AHEAD_SECONDS + 60  # 6 d 23 h 59 min before it expires
    assert fixed.state(soon) == "expiring"
    assert expiry_warning(fixed, soon) == (
        "the TOP session of seller shop-a (app k1) cannot be refreshed and expires in 6 d 23 h "
        "(2026-06-27T20:26:40Z): run shopcrawl auth login --api top before then"
    )
    assert fixed.state(NOW + 31 * DAY) == "login needed"
    assert "expired at" in expiry_warning(fixed, NOW + 31 * DAY)
    refreshable = grant(expires_at=NOW + 600)  # expires in 10 min, refreshable for half a year
    assert refreshable.state(NOW) == "ok" and expiry_warning(refreshable, NOW) == ""
    assert refreshable.state(NOW + 700) == "ok"  # expired, but a refresh renews it
    late = NOW + 180 * DAY - 3 * DAY  # the refresh token itself ends in 3 days
    assert "refresh token of seller shop-a" in expiry_warning(refreshable, late)


# -- token answers -------------------------------------------------------------------------------


def test_top_fixed_session_answer_is_not_refreshable():
    # The real 2018 token_result of §8.1 A2: expires_in 90 days, re_expires_in 0.
    answer = {
        "w1_expires_in": 1800,
        "refresh_token_valid_time": 1526285728986,
        "taobao_user_nick": "b01G%E6%97%97%E8%88%B0%3D",
        "re_expires_in": 0,
        "expire_time": 1534061728986,
        "token_type": "Bearer",
        "access_token": "6201abc",
        "refresh_token": "6201def",
        "expires_in": 7776000,
        "taobao_user_id": "2208",
    }
    g = TopOAuth("k1", "s").grant_from(answer, 1526284000.0)
    assert (g.seller, g.nick, g.user_id) == ("b01G旗舰=", "b01G旗舰=", "2208")
    assert g.expires_at == 1534061728.986
    assert not g.refreshable(1526284000.0) and g.refresh_token == ""


def test_top_refreshable_answer_keeps_both_expiries():
    answer = {
        "access_token": "t",
        "refresh_token": "r",
        "expires_in": 86400,
        "re_expires_in": 2592000,
        "taobao_user_nick": "demo",
        "taobao_user_id": "7",
    }
    g = TopOAuth("k1", "s").grant_from(answer, NOW)
    assert (g.expires_at, g.refresh_expires_at, g.refreshable(NOW)) == (NOW + 86400, NOW + 2592000, True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20121222222222+0800", "2012-12-22T14:22:22+00:00"),
        ("20191014003220000+0800", "2019-10-13T16:32:20+00:00"),
        ("20191014003220500-0130", "2019-10-14T02:02:20.500000+00:00"),
    ],
)
def test_1688_refresh_token_timeout_formats(text, expected):
    from datetime import UTC, datetime

    assert datetime.fromtimestamp(parse_aop_timeout(text), UTC).isoformat() == expected


@pytest.mark.parametrize(
    "text", ["", "2019", "20191014003220+08", "2019101400322X+0800", "20191014003220*0800"]
)
def test_1688_bad_timeouts_are_refused(text):
    with pytest.raises(OAuthError, match="refresh_token_timeout"):
        parse_aop_timeout(text)


def test_1688_authorize_url_and_endpoints():
    client = AopOAuth("k1", "s", None, "https://gw.open.1688.com/openapi")
    url = client.authorize_url("http://127.0.0.1:9/callback", "st")
    assert url == (
        "https://auth.1688.com/oauth/authorize?client_id=k1&site=1688&"
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&state=st"
    )
    assert (
        client._endpoint("http", "getToken")
        == "https://gw.open.1688.com/openapi/http/1/system.oauth2/getToken/k1"
    )
    top = TopOAuth("k1", "s").authorize_url("http://127.0.0.1:9/cb", "st")
    assert top.startswith("https://oauth.taobao.com/authorize?response_type=code&client_id=k1&")


def test_a_grant_survives_time_passing():
    g = grant(expires_at=time.time() + 5)
    assert not g.expired() and g.expired(skew=10)

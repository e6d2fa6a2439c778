"""The crawl's side of authorisation, through a crawler and its middlewares: which credential signs,
when a refused credential is refreshed and when the crawl stops with the login hint (no network is
needed for these decisions; the refresh itself is tested end to end in test_auth_flow.py)."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import pytest

from shopcrawl.auth.crawl import CrawlAuth
from shopcrawl.auth.grants import CredentialsFile, Grant
from shopcrawl.config import ConfigError
from shopcrawl.downloadermiddlewares.signing import SigningMiddleware
from shopcrawl.http import api_request
from shopcrawl.platforms.base import ApiError
from tests.test_extension_run import make_crawler, run_in_reactor

URL = "http://127.0.0.1:1/router/rest"
EXPIRED = ApiError("27", "Invalid session:session-expired", "session-expired")
INVALID = ApiError("27", "Invalid Session", "invalid-sessionkey")
UNAUTHORISED = ApiError("401", "Request need user authorized", source="1688")


def stored(tmp_path, **changes) -> dict:
    """Settings for a crawl that uses a stored grant (SHOPCRAWL_SESSION unset)."""
    path = tmp_path / "conf" / "credentials.json"
    base = dict(
        api="top",
        app_key="sandbox-app-key",
        seller="s1",
        access_token="stored-token-1",
        expires_at=time.time() + 3600,
        refresh_token="stored-refresh-1",
        refresh_expires_at=time.time() + 86400,
        nick="s1",
    )
    CredentialsFile(path).put(Grant(**{**base, **changes}))
    return {
        "SHOPCRAWL_SESSION": "",
        "SHOPCRAWL_CREDENTIALS": str(path),
        "SHOPCRAWL_OAUTH_URL": "http://127.0.0.1:1/oauth/top",  # nothing listens: a refresh fails
    }


def request():
    return api_request(URL, "taobao.items.onsale.get", {"page_no": "1"}, callback=None, meta={})


def test_the_stored_session_signs_the_calls(tmp_path):
    crawler = make_crawler(tmp_path, SHOPCRAWL_API_URL=URL, **stored(tmp_path))
    mw = SigningMiddleware.from_crawler(crawler)
    req = request()
    mw.process_request(req)
    assert dict(parse_qsl(req.body.decode()))["session"] == "stored-token-1"
    assert CrawlAuth.for_crawler(crawler).signed[req] == 0


def test_shopcrawl_session_wins_over_the_file(tmp_path):
    settings = {**stored(tmp_path), "SHOPCRAWL_SESSION": "from-env"}
    crawler = make_crawler(tmp_path, SHOPCRAWL_API_URL=URL, **settings)
    req = request()
    SigningMiddleware.from_crawler(crawler).process_request(req)
    assert dict(parse_qsl(req.body.decode()))["session"] == "from-env"
    assert CrawlAuth.for_crawler(crawler).keeper is None


def test_a_seller_with_no_stored_grant_is_a_configuration_error_naming_the_login(tmp_path):
    crawler = make_crawler(tmp_path, seller="other", SHOPCRAWL_API_URL=URL, **stored(tmp_path))
    with pytest.raises(ConfigError, match=r"seller 'other'.*authorised: s1.*shopcrawl auth login --api top"):
        SigningMiddleware.from_crawler(crawler)


def test_a_refused_env_session_stops_with_the_login_hint(tmp_path):
    crawler = make_crawler(tmp_path, SHOPCRAWL_API_URL=URL)
    line = run_in_reactor(lambda: CrawlAuth.for_crawler(crawler).renew(request(), EXPIRED))
    assert line.endswith(
        "SHOPCRAWL_SESSION was refused and shopcrawl cannot refresh it: set a valid one, "
        "or unset it and run shopcrawl auth login --api top"
    )


def test_a_credential_refused_long_before_its_expiry_is_not_refreshed(tmp_path):
    settings = stored(tmp_path, api="1688", seller="b2b-1", nick="s1")
    crawler = make_crawler(
        tmp_path, SHOPCRAWL_API="1688", SHOPCRAWL_API_URL="http://127.0.0.1:1/openapi", **settings
    )
    auth = CrawlAuth.for_crawler(crawler)
    assert not auth.expired(UNAUTHORISED)  # 1688 says 401 for wrong and expired alike: the expiry decides
    line = run_in_reactor(lambda: auth.renew(request(), UNAUTHORISED))
    assert "refused before its expiry" in line and line.endswith("run shopcrawl auth login --api 1688")
    assert auth.keeper.refreshes == 0 and auth.generation == 0


def test_top_says_when_a_session_expired_and_the_stored_expiry_decides_otherwise(tmp_path):
    crawler = make_crawler(tmp_path, SHOPCRAWL_API_URL=URL, **stored(tmp_path))
    auth = CrawlAuth.for_crawler(crawler)
    assert auth.expired(EXPIRED) and not auth.expired(INVALID)
    late = make_crawler(
        tmp_path / "b", SHOPCRAWL_API_URL=URL, **stored(tmp_path / "b", expires_at=time.time() + 60)
    )
    assert CrawlAuth.for_crawler(late).expired(INVALID)  # within the 2-minute skew of its expiry


def test_a_call_signed_before_the_last_refresh_is_resent_without_another(tmp_path):
    crawler = make_crawler(tmp_path, SHOPCRAWL_API_URL=URL, **stored(tmp_path))
    auth = CrawlAuth.for_crawler(crawler)
    old = request()
    auth.sign_with(old)
    auth.generation = 1  # another call's refresh went through meanwhile
    assert run_in_reactor(lambda: auth.renew(old, EXPIRED)) is None
    assert auth.keeper.refreshes == 0


def test_a_refresh_that_cannot_reach_the_platform_stops_the_crawl_once_for_every_call(tmp_path):
    crawler = make_crawler(tmp_path, SHOPCRAWL_API_URL=URL, **stored(tmp_path))
    auth = CrawlAuth.for_crawler(crawler)
    first = run_in_reactor(lambda: auth.renew(request(), EXPIRED))
    assert "cannot reach http://127.0.0.1:1" in first and first.endswith("run shopcrawl auth login --api top")
    assert run_in_reactor(lambda: auth.renew(request(), EXPIRED)) == first  # no second attempt
    (grant,) = CredentialsFile(tmp_path / "conf" / "credentials.json").load()
    assert grant.access_token == "stored-token-1"  # nothing half-written

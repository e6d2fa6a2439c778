"""The sandbox's TOP and 1688 OAuth flows over HTTP (a real sandbox process): authorise redirects, code
exchange, refresh, postpone, issued tokens on the APIs and their expiry, ``/_sandbox/oauth``."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest

from shopcrawl.platforms import top
from shopcrawl.platforms.aop import protocol as aop
from shopcrawl.sandbox.oauth import seller_user_id, token_timeout
from tests.sandbox_proc import APP_KEY, APP_SECRET, SESSION, Reply, SandboxProc, _send
from tests.services import first_line, stop

CALLBACK = "https://app.example/cb?shop=1"
TOP_FIELDS = {
    "access_token", "token_type", "expires_in", "refresh_token", "re_expires_in", "r1_expires_in",
    "r2_expires_in", "w1_expires_in", "w2_expires_in", "taobao_user_nick", "taobao_user_id", "expire_time",
    "refresh_token_valid_time",
}  # fmt: skip
AOP_FIELDS = {"aliId", "resource_owner", "memberId", "expires_in", "refresh_token", "refresh_token_timeout",
              "access_token"}  # fmt: skip
AOP_REFRESH_FIELDS = {"access_token", "aliId", "resource_owner", "expires_in", "memberId"}
DAY = 86400


def start(factory, *args: str) -> SandboxProc:
    proc: SandboxProc = factory("--items", "20", *args)
    return proc


def raw_get(sb: SandboxProc, path: str, params: dict[str, str]) -> tuple[int, str | None, bytes]:
    """GET without following redirects: (status, Location, body)."""
    parts = urllib.parse.urlsplit(sb.base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", path + "?" + urllib.parse.urlencode(params))
        response = conn.getresponse()
        return response.status, response.getheader("Location"), response.read()
    finally:
        conn.close()


def authorize(sb: SandboxProc, platform: str, **params: str) -> tuple[int, str | None, bytes]:
    if platform == "top":
        defaults = {"response_type": "code", "client_id": APP_KEY, "redirect_uri": CALLBACK, "view": "web"}
    else:
        defaults = {"client_id": APP_KEY, "site": "1688", "redirect_uri": CALLBACK}
    return raw_get(sb, f"/oauth/{platform}/authorize", {**defaults, **params})


def callback_query(location: str | None) -> dict[str, str]:
    assert location is not None
    base, _, query = location.partition("?")
    assert base == CALLBACK.partition("?")[0]
    pairs = urllib.parse.parse_qs(query, keep_blank_values=True)
    assert pairs.pop("shop") == ["1"]  # the callback's own query is kept; ours is appended with "&"
    return {k: v[0] for k, v in pairs.items()}


def new_code(sb: SandboxProc, platform: str) -> str:
    status, location, _ = authorize(sb, platform, state="s")
    assert status == 302
    return callback_query(location)["code"]


def post(sb: SandboxProc, path: str, form: dict[str, str]) -> Reply:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(sb.base + path, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
    return _send(request, 30)


def client(**form: str) -> dict[str, str]:
    return {"client_id": APP_KEY, "client_secret": APP_SECRET, **form}


def top_token(sb: SandboxProc, **form: str) -> Reply:
    return post(sb, "/oauth/top/token", client(**form))


def top_exchange(sb: SandboxProc, code: str | None = None) -> dict:
    code = code or new_code(sb, "top")
    reply = top_token(sb, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert reply.status == 200, reply
    return reply.json()


def aop_token(sb: SandboxProc, proto: str = "http", **form: str) -> Reply:
    return post(sb, f"/openapi/{proto}/1/system.oauth2/getToken/{APP_KEY}", client(**form))


def aop_exchange(sb: SandboxProc, code: str | None = None, **form: str) -> dict:
    form = {"grant_type": "authorization_code", "need_refresh_token": "true", "redirect_uri": CALLBACK,
            "code": code or new_code(sb, "1688"), **form}  # fmt: skip
    reply = aop_token(sb, **form)
    assert reply.status == 200, reply
    return reply.json()


def postpone(sb: SandboxProc, **form: str) -> Reply:
    return post(sb, f"/openapi/param2/1/system.oauth2/postponeToken/{APP_KEY}", client(**form))


def oauth_error(reply: Reply, status: int, error: str) -> str:
    assert reply.status == status, reply
    body = reply.json()
    assert set(body) == {"error", "error_description"} and body["error"] == error, body
    return str(body["error_description"])


def top_listing(sb: SandboxProc, session: str) -> dict:
    return sb.call(top.LISTING_METHOD, session=session, fields="num_iid,title", page_size="5")


def aop_listing(sb: SandboxProc, token: str) -> Reply:
    path = aop.url_path(aop.LISTING_API, APP_KEY)
    params = aop.signed_params({"pageNo": "1", "pageSize": "5"}, path=path, secret=APP_SECRET,
                               access_token=token, now=datetime.now(UTC))  # fmt: skip
    data = urllib.parse.urlencode(params).encode()
    return _send(urllib.request.Request(f"{sb.base}/openapi/{path}", data=data, method="POST"), 30)


def top_works(sb: SandboxProc, session: str) -> bool:
    return "items_onsale_get_response" in top_listing(sb, session)


# --- authorise ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["top", "1688"])
def test_authorize_redirects_with_a_code_and_the_state(sandbox_factory, platform):
    sb = start(sandbox_factory)
    status, location, _ = authorize(sb, platform, state="a b&c/ü")
    assert status == 302
    query = callback_query(location)
    assert set(query) == {"code", "state"} and query["state"] == "a b&c/ü"
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", query["code"])
    # A callback without a query gets "?"; without a state, none comes back.
    status, location, _ = authorize(sb, platform, redirect_uri="http://127.0.0.1:9/cb")
    assert status == 302 and location is not None
    assert re.fullmatch(r"http://127\.0\.0\.1:9/cb\?code=[A-Za-z0-9_-]+", location)


@pytest.mark.parametrize(
    ("platform", "params", "error"),
    [
        ("top", {"response_type": ""}, "invalid_request"),
        ("top", {"response_type": "token"}, "invalid_request"),
        ("top", {"client_id": "someone-else"}, "invalid_client"),
        ("top", {"redirect_uri": ""}, "invalid_request"),
        ("top", {"redirect_uri": "not-a-url"}, "invalid_request"),
        ("1688", {"client_id": "someone-else"}, "invalid_client"),
        ("1688", {"redirect_uri": ""}, "invalid_request"),
        ("1688", {"site": "alibaba"}, "invalid_request"),
    ],
)
def test_authorize_errors_answer_400_without_a_redirect(sandbox_factory, platform, params, error):
    sb = start(sandbox_factory)
    status, location, body = authorize(sb, platform, **params)
    assert location is None
    oauth_error(Reply(status, body, ""), 400, error)
    assert sb.oauth()["calls"]["errors"] == 1


@pytest.mark.parametrize("platform", ["top", "1688"])
def test_a_refusing_seller_is_redirected_with_access_denied(sandbox_factory, platform):
    sb = start(sandbox_factory)
    status, location, _ = authorize(sb, platform, state="s1", deny="1")
    assert status == 302 and location is not None
    assert location.endswith("?shop=1&error=access_denied&error_description=authorize%20reject&state=s1")


# --- TOP token endpoint ------------------------------------------------------------------------------


def test_top_code_exchange_fields_and_types(sandbox_factory):
    sb = start(sandbox_factory, "--seller", "旗舰店 demo", "--seed", "3")
    before = time.time()
    token = top_exchange(sb)
    after = time.time()
    assert set(token) >= TOP_FIELDS
    assert token["token_type"] == "Bearer" and token["access_token"].startswith("6201")
    assert token["access_token"] != token["refresh_token"] and len(token["refresh_token"]) >= 32
    assert token["expires_in"] == DAY and token["re_expires_in"] == 180 * DAY
    assert all(token[f"{level}_expires_in"] == DAY for level in ("r1", "r2", "w1", "w2"))
    assert all(type(token[k]) is int for k in TOP_FIELDS if k.endswith(("_in", "_time")))
    assert token["taobao_user_nick"] == "%E6%97%97%E8%88%B0%E5%BA%97%20demo"
    assert urllib.parse.unquote(token["taobao_user_nick"]) == "旗舰店 demo"
    assert token["taobao_user_id"] == seller_user_id(3) and token["taobao_user_id"].isdigit()
    assert (before + DAY) * 1000 - 1 <= token["expire_time"] <= (after + DAY) * 1000
    assert (before + 180 * DAY) * 1000 - 1 <= token["refresh_token_valid_time"] <= (after + 180 * DAY) * 1000


def test_a_code_works_once_and_only_where_it_was_issued(sandbox_factory):
    sb = start(sandbox_factory)
    code = new_code(sb, "top")
    top_exchange(sb, code)
    again = top_token(sb, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert oauth_error(again, 400, "invalid_grant") == "authorize code expire"
    other_uri = top_token(
        sb, grant_type="authorization_code", code=new_code(sb, "top"), redirect_uri="https://x.example/"
    )
    assert oauth_error(other_uri, 400, "invalid_grant") == "redirect_uri is invalidate"
    top_code_on_1688 = aop_token(
        sb, grant_type="authorization_code", code=new_code(sb, "top"), redirect_uri=CALLBACK
    )
    oauth_error(top_code_on_1688, 400, "invalid_grant")
    code = new_code(sb, "1688")
    aop_exchange(sb, code)
    oauth_error(
        aop_token(sb, grant_type="authorization_code", code=code, redirect_uri=CALLBACK), 400, "invalid_grant"
    )


def test_client_errors(sandbox_factory):
    sb = start(sandbox_factory)
    code = new_code(sb, "top")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    wrong = post(sb, "/oauth/top/token", {**form, "client_id": APP_KEY, "client_secret": "wrong"})
    assert oauth_error(wrong, 401, "invalid_client") == "client_secret is invalidate"
    unknown = post(sb, "/oauth/top/token", {**form, "client_id": "other", "client_secret": APP_SECRET})
    oauth_error(unknown, 400, "invalid_client")
    oauth_error(top_token(sb, grant_type="password"), 400, "unsupported_grant_type")
    oauth_error(top_token(sb, grant_type="authorization_code"), 400, "invalid_request")  # no code
    assert top_exchange(sb, code)["access_token"]  # a refused client did not spend the code
    # 1688: the client_id must be the appKey of the path; a wrong secret is 401 there too.
    wrong = post(sb, f"/openapi/http/1/system.oauth2/getToken/{APP_KEY}",
                 {**form, "client_id": APP_KEY, "client_secret": "wrong"})  # fmt: skip
    oauth_error(wrong, 401, "invalid_client")
    other_path = post(sb, "/openapi/http/1/system.oauth2/getToken/other-key", client(**form))
    oauth_error(other_path, 400, "invalid_client")
    reply = _send(
        urllib.request.Request(sb.base + "/oauth/top/token?" + urllib.parse.urlencode(client(**form))), 30
    )
    oauth_error(reply, 400, "invalid_request")  # GET
    assert sb.oauth()["calls"]["errors"] == 7


def test_top_refresh_rotates_the_refresh_token(sandbox_factory):
    sb = start(sandbox_factory)
    first = top_exchange(sb)
    refreshed = top_token(sb, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert refreshed.status == 200, refreshed
    second = refreshed.json()
    assert set(second) >= TOP_FIELDS
    assert (
        second["access_token"] != first["access_token"] and second["refresh_token"] != first["refresh_token"]
    )
    assert (
        second["refresh_token_valid_time"] == first["refresh_token_valid_time"]
    )  # the grant is not extended
    old = top_token(sb, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert oauth_error(old, 400, "invalid_grant").startswith("refresh_token is invalid")
    assert top_works(sb, first["access_token"]) and top_works(sb, second["access_token"])
    third = top_token(sb, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert third.status == 200
    oauth_error(
        top_token(sb, grant_type="refresh_token", refresh_token="6202" + "0" * 36), 400, "invalid_grant"
    )


def test_top_refresh_ttl_zero_issues_a_fixed_session(sandbox_factory):
    sb = start(sandbox_factory, "--refresh-ttl", "0", "--token-ttl", "3600")
    before = time.time()
    token = top_exchange(sb)
    assert "refresh_token" not in token and token["re_expires_in"] == 0 and token["expires_in"] == 3600
    assert before * 1000 - 1 <= token["refresh_token_valid_time"] <= time.time() * 1000
    assert top_works(sb, token["access_token"])
    assert sb.oauth()["refresh_ttl"] == 0


# --- 1688 token endpoints ----------------------------------------------------------------------------


def test_1688_code_exchange_fields_are_all_strings(sandbox_factory):
    sb = start(sandbox_factory, "--seed", "4", "--seller", "shop-owner")
    before = time.time()
    token = aop_exchange(sb)
    assert set(token) == AOP_FIELDS and all(type(value) is str for value in token.values())
    assert token["aliId"] == seller_user_id(4) and token["resource_owner"] == "shop-owner"
    assert token["memberId"] == f"b2b-{token['aliId']}a" and token["expires_in"] == str(DAY)
    assert re.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", token["access_token"])
    timeout = aop.parse_time(token["refresh_token_timeout"]).timestamp()
    assert before + 180 * DAY - 1 <= timeout <= time.time() + 180 * DAY
    without = aop_exchange(sb, need_refresh_token="false")
    assert set(without) == AOP_FIELDS - {"refresh_token", "refresh_token_timeout"}


def test_1688_refresh_keeps_the_refresh_token(sandbox_factory):
    sb = start(sandbox_factory)
    token = aop_exchange(sb)
    seen = {token["access_token"]}
    for proto in ("param2", "http", "param2"):
        reply = aop_token(sb, proto, grant_type="refresh_token", refresh_token=token["refresh_token"])
        assert reply.status == 200, reply
        body = reply.json()
        assert set(body) == AOP_REFRESH_FIELDS and all(type(value) is str for value in body.values())
        seen.add(body["access_token"])
    assert len(seen) == 4 and all(aop_listing(sb, access).status == 200 for access in seen)
    assert sb.oauth()["calls"]["refresh_token"] == 3


def test_1688_postpone_only_within_30_days_of_expiry(sandbox_factory):
    sb = start(sandbox_factory)
    far = aop_exchange(sb)
    refused = postpone(sb, refresh_token=far["refresh_token"], access_token=far["access_token"])
    description = oauth_error(refused, 400, "invalid_request")
    assert description == f"refreshToken is too long to expire with expireTime {far['refresh_token_timeout']}"
    sb.oauth_control(refresh_ttl=10 * DAY)
    near = aop_exchange(sb)
    reply = postpone(sb, refresh_token=near["refresh_token"], access_token=near["access_token"])
    assert reply.status == 200, reply
    renewed = reply.json()
    assert set(renewed) == AOP_FIELDS and renewed["refresh_token"] != near["refresh_token"]
    old = aop_token(sb, "param2", grant_type="refresh_token", refresh_token=near["refresh_token"])
    oauth_error(old, 400, "invalid_grant")
    new = aop_token(sb, "param2", grant_type="refresh_token", refresh_token=renewed["refresh_token"])
    assert new.status == 200
    bad_access = postpone(sb, refresh_token=renewed["refresh_token"], access_token="not-a-token")
    oauth_error(bad_access, 400, "invalid_grant")
    assert sb.oauth()["calls"]["postpone"] == 3


# --- issued tokens on the APIs -----------------------------------------------------------------------


def test_issued_tokens_work_on_their_own_api_beside_the_fixed_session(sandbox_factory):
    sb = start(sandbox_factory)
    top_session, aop_access = top_exchange(sb)["access_token"], aop_exchange(sb)["access_token"]
    payload = top_listing(sb, top_session)["items_onsale_get_response"]
    assert payload["total_results"] == 20 and len(payload["items"]["item"]) == 5
    reply = aop_listing(sb, aop_access)
    assert reply.status == 200 and aop.loads(reply.body)["totalRecords"] == 20
    assert top_works(sb, SESSION) and aop_listing(sb, SESSION).status == 200
    # A token works only on the platform that issued it.
    assert top_listing(sb, aop_access)["error_response"]["sub_code"] == "invalid-sessionkey"
    assert aop_listing(sb, top_session).status == 401
    assert sb.stats()["outcomes"] == {"ok": 4, "error:27": 1, "auth": 1}


def test_expired_tokens_answer_27_session_expired_and_401(sandbox_factory):
    sb = start(sandbox_factory, "--token-ttl", "1")
    top_session = top_exchange(sb)
    aop_access = aop_exchange(sb)["access_token"]
    issued_by = time.time()
    deadline = max(top_session["expire_time"] / 1000, issued_by + 1)
    while time.time() <= deadline:  # wait on the clock, bounded by the 1 s lifetime
        time.sleep(0.05)
    assert sb.oauth()["live_tokens"] == 0
    error = top_listing(sb, top_session["access_token"])["error_response"]
    assert {k: v for k, v in error.items() if k != "request_id"} == {
        "code": 27,
        "msg": "Invalid session:session-expired",
        "sub_code": "session-expired",
    }
    reply = aop_listing(sb, aop_access)
    assert reply.status == 401
    assert aop.loads(reply.body)["error_code"] == "401"
    assert aop.loads(reply.body)["error_message"] == "Request need user authorized"
    assert top_listing(sb, "never-issued")["error_response"]["sub_code"] == "invalid-sessionkey"
    assert sb.stats()["outcomes"] == {"session_expired": 2, "error:27": 1}
    assert sb.oauth()["expired_answers"] == 2
    assert top_works(sb, SESSION)  # the fixed session never expires


def test_expire_access_and_revoke_refresh(sandbox_factory):
    sb = start(sandbox_factory)
    top_token_1, aop_token_1 = top_exchange(sb), aop_exchange(sb)
    assert sb.oauth()["live_tokens"] == 2
    assert sb.oauth_control(expire_access=True)["live_tokens"] == 0
    assert top_listing(sb, top_token_1["access_token"])["error_response"]["sub_code"] == "session-expired"
    assert aop_listing(sb, aop_token_1["access_token"]).status == 401
    # The refresh tokens still work and give live tokens; then revoke them all.
    refreshed = top_token(sb, grant_type="refresh_token", refresh_token=top_token_1["refresh_token"]).json()
    assert top_works(sb, refreshed["access_token"])
    assert aop_token(sb, grant_type="refresh_token", refresh_token=aop_token_1["refresh_token"]).status == 200
    sb.oauth_control(revoke_refresh=True)
    revoked = top_token(sb, grant_type="refresh_token", refresh_token=refreshed["refresh_token"])
    assert oauth_error(revoked, 400, "invalid_grant") == "refresh_token is invalid: revoked"
    revoked = aop_token(sb, grant_type="refresh_token", refresh_token=aop_token_1["refresh_token"])
    oauth_error(revoked, 400, "invalid_grant")
    assert top_works(sb, refreshed["access_token"])  # revoking refresh tokens leaves sessions alone
    fresh = top_exchange(sb)  # a new grant is not revoked
    assert top_token(sb, grant_type="refresh_token", refresh_token=fresh["refresh_token"]).status == 200


def test_oauth_control_counts_and_settings(sandbox_factory):
    sb = start(sandbox_factory)
    assert sb.oauth() == {
        "calls": {"authorize": 0, "authorization_code": 0, "refresh_token": 0, "postpone": 0, "errors": 0},
        "expired_answers": 0,
        "token_ttl": DAY,
        "refresh_ttl": 180 * DAY,
        "live_tokens": 0,
    }
    token = top_exchange(sb)
    top_token(sb, grant_type="refresh_token", refresh_token=token["refresh_token"])
    top_token(sb, grant_type="refresh_token", refresh_token=token["refresh_token"])  # rotated: refused
    authorize(sb, "1688", site="")
    state = sb.oauth_control(token_ttl=60, refresh_ttl=0)
    assert state["calls"] == {"authorize": 2, "authorization_code": 1, "refresh_token": 2, "postpone": 0,
                              "errors": 2}  # fmt: skip
    assert (state["token_ttl"], state["refresh_ttl"], state["live_tokens"]) == (60, 0, 2)
    later = top_exchange(sb)
    assert later["expires_in"] == 60 and "refresh_token" not in later
    assert set(aop_exchange(sb)) == AOP_FIELDS - {"refresh_token", "refresh_token_timeout"}
    assert sb.stats()["calls"] == {}  # OAuth calls are not API calls


@pytest.mark.parametrize(
    "body",
    [b"[]", b"{", b'{"token_ttl": 0}', b'{"token_ttl": "60"}', b'{"refresh_ttl": -1}', b'{"token_ttl": true}',
     b'{"revoke_refresh": 1}', b'{"other": 1}', b'{"token_ttl": 60, "x": 1}'],
)  # fmt: skip
def test_oauth_control_rejects_bad_bodies(sandbox_factory, body):
    sb = start(sandbox_factory)
    request = urllib.request.Request(sb.base + "/_sandbox/oauth", data=body, method="POST")
    reply = _send(request, 30)
    assert reply.status == 400 and set(reply.json()) == {"error"}
    assert sb.oauth()["token_ttl"] == DAY  # nothing applied


def test_no_token_code_or_secret_is_logged(tmp_path):
    """At DEBUG, through every flow, the sandbox's stderr and call log hold none of them."""
    call_log = tmp_path / "calls.jsonl"
    with tempfile.TemporaryFile() as stderr:
        args = [sys.executable, "-m", "shopcrawl.sandbox", "--port", "0", "--items", "20",
                "--log-level", "DEBUG", "--call-log", str(call_log)]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr)
        try:
            url = first_line(process, 30)
            sb = SandboxProc(url=url, base=url.removesuffix("/router/rest"), process=process)
            top_code, aop_code = new_code(sb, "top"), new_code(sb, "1688")
            top_1 = top_exchange(sb, top_code)
            top_2 = top_token(sb, grant_type="refresh_token", refresh_token=top_1["refresh_token"]).json()
            aop_1 = aop_exchange(sb, aop_code)
            top_listing(sb, top_2["access_token"])
            aop_listing(sb, aop_1["access_token"])
            top_token(sb, grant_type="refresh_token", refresh_token=top_1["refresh_token"])  # refused
        finally:
            stop(process)
        stderr.seek(0)
        logged = stderr.read().decode() + call_log.read_text()
    assert "oauth top authorization_code" in logged  # the flows were logged, without their values
    secrets = [APP_SECRET, SESSION, top_code, aop_code, aop_1["refresh_token"], aop_1["access_token"]]
    secrets += [top_1[k] for k in ("access_token", "refresh_token")] + [
        top_2[k] for k in ("access_token", "refresh_token")
    ]
    assert [s for s in secrets if s in logged] == []


# --- pure functions -----------------------------------------------------------------------------------


def test_refresh_token_timeout_format():
    assert token_timeout(0) == "19700101080000000+0800"
    assert token_timeout(1_700_000_000.123) == "20231115061320123+0800"
    value = token_timeout(1_571_000_000.5)
    assert re.fullmatch(r"\d{17}\+0800", value)
    assert aop.parse_time(value).timestamp() == 1_571_000_000.5


def test_seller_user_id_is_stable_per_seed():
    assert seller_user_id(1) == seller_user_id(1) != seller_user_id(2)
    assert all(re.fullmatch(r"2\d{9}", seller_user_id(seed)) for seed in range(20))

"""The two platforms' OAuth endpoints (api-protocols.md §8): the authorise URL, the code exchange,
the refresh, and 1688's ``postponeToken``. Blocking (urllib): call from a thread, never the reactor.

The answers become :class:`~shopcrawl.auth.grants.Grant` objects. An error never carries a token
or the app secret: :class:`OAuthError` holds the platform's ``error`` and ``error_description``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from shopcrawl.auth.grants import Grant
from shopcrawl.plainhttp import OPENER

TOP_OAUTH_URL = "https://oauth.taobao.com"  # /authorize, /token
AOP_OAUTH_URL = "https://auth.1688.com/oauth"  # /authorize; tokens are on the API host
TIMEOUT_SECONDS = 20.0
POSTPONE_WINDOW_SECONDS = 30 * 86400  # 1688 renews a refresh token only this close to its timeout
_MAX_ANSWER = 256 * 1024
_GMT8 = timezone(timedelta(hours=8))


class OAuthError(Exception):
    """The token endpoint refused, or could not be reached. ``error`` is the platform's code
    (``invalid_grant``, ...) or ``http``/``network``; the text holds no token or secret."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description

    @property
    def needs_login(self) -> bool:
        """The grant itself was refused (revoked, expired, used): only a new login helps."""
        return (
            self.error in ("invalid_grant", "invalid_token", "access_denied") or "expire" in self.description
        )


def post_form(url: str, form: dict[str, str], timeout: float = TIMEOUT_SECONDS) -> dict[str, Any]:
    """POST ``form`` and decode the JSON answer; an OAuth error body raises OAuthError."""
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    status: int
    try:
        with OPENER.open(request, timeout=timeout) as response:
            status, body = response.status, response.read(_MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(_MAX_ANSWER)
        exc.close()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OAuthError("network", f"cannot reach {_origin(url)}: {reason}"[:300]) from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise OAuthError("http", f"{_origin(url)} answered HTTP {status} without JSON") from None
    if not isinstance(answer, dict):
        raise OAuthError("http", f"{_origin(url)} answered HTTP {status} with a JSON {type(answer).__name__}")
    if "error" in answer or "error_code" in answer or not 200 <= status < 300:
        error = str(answer.get("error") or answer.get("error_code") or f"http_{status}")
        text = str(answer.get("error_description") or answer.get("error_message") or "")
        raise OAuthError(error, text[:300])
    return answer


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _with_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"


def _seconds(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_aop_timeout(text: str) -> float:
    """1688's ``refresh_token_timeout``: ``yyyyMMddHHmmss[SSS]+zzzz`` -> unix seconds."""
    text = str(text).strip()
    digits, sign, zone = text[:-5], text[-5:-4], text[-4:]
    if sign not in "+-" or not zone.isdigit() or len(digits) not in (14, 17) or not digits.isdigit():
        raise OAuthError("bad_answer", f"refresh_token_timeout {text!r} is not yyyyMMddHHmmss[SSS]+zzzz")
    offset = timedelta(hours=int(zone[:2]), minutes=int(zone[2:]))
    moment = datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(
        tzinfo=timezone(offset if sign == "+" else -offset)
    )
    return moment.timestamp() + (int(digits[14:]) / 1000 if len(digits) == 17 else 0)


class TopOAuth:
    """TOP's code grant on oauth.taobao.com (§8.1 A1)."""

    api = "top"

    def __init__(self, app_key: str, secret: str, oauth_url: str | None = None) -> None:
        self.app_key = app_key
        self._secret = secret
        self.oauth_url = (oauth_url or TOP_OAUTH_URL).rstrip("/")

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        params = {"response_type": "code", "client_id": self.app_key, "redirect_uri": redirect_uri}
        return _with_query(f"{self.oauth_url}/authorize", {**params, "state": state, "view": "web"})

    def exchange(self, code: str, redirect_uri: str) -> Grant:
        answer = post_form(
            f"{self.oauth_url}/token",
            {
                "grant_type": "authorization_code",
                "client_id": self.app_key,
                "client_secret": self._secret,
                "code": code,
                "redirect_uri": redirect_uri,
            },
        )
        return self.grant_from(answer, time.time())

    def refresh(self, grant: Grant) -> Grant:
        form = _refresh_form(self.app_key, self._secret, grant)
        now = time.time()
        fresh = self.grant_from(post_form(f"{self.oauth_url}/token", form), now)
        return replace(fresh, seller=grant.seller, obtained_at=grant.obtained_at, refreshed_at=now)

    def grant_from(self, answer: dict[str, Any], now: float) -> Grant:
        token = str(answer.get("access_token") or "")
        if not token:
            raise OAuthError("bad_answer", "the token answer has no access_token")
        expires_at = _ms(answer.get("expire_time")) or _after(now, answer.get("expires_in"))
        refresh = str(answer.get("refresh_token") or "")
        re_expires = _seconds(answer.get("re_expires_in"))
        if re_expires is not None and re_expires <= 0:
            refresh = ""  # a fixed-length session: TOP does not refresh it (§8.1 A2)
        refresh_at = 0.0
        if refresh:
            refresh_at = _ms(answer.get("refresh_token_valid_time")) or _after(now, re_expires)
        nick = urllib.parse.unquote(str(answer.get("taobao_user_nick") or answer.get("user_nick") or ""))
        user_id = str(answer.get("taobao_user_id") or answer.get("user_id") or "")
        return Grant(
            api="top",
            app_key=self.app_key,
            seller=nick or user_id,
            access_token=token,
            expires_at=expires_at,
            refresh_token=refresh,
            refresh_expires_at=refresh_at,
            user_id=user_id,
            nick=nick,
            obtained_at=now,
        )


class AopOAuth:
    """1688's code grant, refresh and postponeToken (§2.5, §8.2 B1). The token endpoints live on the
    API host: ``<api_url>/http/1/system.oauth2/getToken/<AppKey>`` and ``<api_url>/param2/1/...``."""

    api = "1688"

    def __init__(self, app_key: str, secret: str, oauth_url: str | None, api_url: str) -> None:
        self.app_key = app_key
        self._secret = secret
        self.oauth_url = (oauth_url or AOP_OAUTH_URL).rstrip("/")
        self.api_url = api_url.rstrip("/")

    def _endpoint(self, kind: str, name: str) -> str:
        return f"{self.api_url}/{kind}/1/system.oauth2/{name}/{urllib.parse.quote(self.app_key)}"

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        params = {"client_id": self.app_key, "site": "1688", "redirect_uri": redirect_uri, "state": state}
        return _with_query(f"{self.oauth_url}/authorize", params)

    def exchange(self, code: str, redirect_uri: str) -> Grant:
        form = {
            "grant_type": "authorization_code",
            "need_refresh_token": "true",
            "client_id": self.app_key,
            "client_secret": self._secret,
            "redirect_uri": redirect_uri,
            "code": code,
        }
        now = time.time()
        answer = post_form(self._endpoint("http", "getToken"), form)
        token = str(answer.get("access_token") or "")
        member = str(answer.get("memberId") or "")
        if not token or not member:
            raise OAuthError("bad_answer", "the token answer has no access_token or memberId")
        refresh = str(answer.get("refresh_token") or "")
        timeout = answer.get("refresh_token_timeout")
        return Grant(
            api="1688",
            app_key=self.app_key,
            seller=member,
            access_token=token,
            expires_at=_after(now, answer.get("expires_in")),
            refresh_token=refresh,
            refresh_expires_at=parse_aop_timeout(str(timeout)) if refresh and timeout else 0.0,
            user_id=str(answer.get("aliId") or ""),
            nick=str(answer.get("resource_owner") or ""),
            obtained_at=now,
        )

    def refresh(self, grant: Grant) -> Grant:
        """A new access token; the refresh token stays (1688 does not send a new one)."""
        form = _refresh_form(self.app_key, self._secret, grant)
        now = time.time()
        answer = post_form(self._endpoint("param2", "getToken"), form)
        token = str(answer.get("access_token") or "")
        if not token:
            raise OAuthError("bad_answer", "the refresh answer has no access_token")
        return replace(
            grant, access_token=token, expires_at=_after(now, answer.get("expires_in")), refreshed_at=now
        )

    def postpone(self, grant: Grant) -> Grant:
        """A new refresh token for one within 30 days of its timeout (the old one stops working)."""
        form = {
            "client_id": self.app_key,
            "client_secret": self._secret,
            "refresh_token": grant.refresh_token,
            "access_token": grant.access_token,
        }
        answer = post_form(self._endpoint("param2", "postponeToken"), form)
        refresh = str(answer.get("refresh_token") or "")
        timeout = answer.get("refresh_token_timeout")
        if not refresh or not timeout:
            raise OAuthError("bad_answer", "the postponeToken answer has no refresh_token or timeout")
        changes: dict[str, Any] = {
            "refresh_token": refresh,
            "refresh_expires_at": parse_aop_timeout(str(timeout)),
        }
        if answer.get("access_token"):
            changes["access_token"] = str(answer["access_token"])
            changes["expires_at"] = _after(time.time(), answer.get("expires_in")) or grant.expires_at
        return replace(grant, **changes)


def _refresh_form(app_key: str, secret: str, grant: Grant) -> dict[str, str]:
    """The refresh grant's form, the same on both platforms (§8.1 A1, §8.2 B1)."""
    return {
        "grant_type": "refresh_token",
        "client_id": app_key,
        "client_secret": secret,
        "refresh_token": grant.refresh_token,
    }


def _ms(value: Any) -> float:
    seconds = _seconds(value)
    return seconds / 1000 if seconds else 0.0


def _after(now: float, seconds: Any) -> float:
    value = _seconds(seconds)
    return now + value if value and value > 0 else 0.0


OAuthClient = TopOAuth | AopOAuth


def oauth_client(api: str, app_key: str, secret: str, *, oauth_url: str | None, api_url: str) -> OAuthClient:
    if api == "top":
        return TopOAuth(app_key, secret, oauth_url)
    if api == "1688":
        return AopOAuth(app_key, secret, oauth_url, api_url)
    raise ValueError(f"no OAuth for api {api!r}: use top or 1688")

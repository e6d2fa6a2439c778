"""The TOP and 1688 OAuth 2.0 code flows (§8 of the protocol doc), and the tokens they issue.

Endpoints (no signature on any of them; not subject to ``--qps``, quota or ``--rate-*`` faults; held by
``--latency-ms`` like the API calls):

- TOP, production host ``oauth.taobao.com`` → here under ``/oauth/top`` (the client's OAuth base URL):
  ``GET /oauth/top/authorize?response_type=code&client_id&redirect_uri[&state][&view]`` → 302 to
  ``redirect_uri`` with ``code`` (and ``state``); ``POST /oauth/top/token`` (form) with
  ``grant_type=authorization_code`` (``client_id``, ``client_secret``, ``code``, ``redirect_uri``) or
  ``grant_type=refresh_token`` (``client_id``, ``client_secret``, ``refresh_token``) → the JSON of §8.1 A1.
- 1688, production hosts ``auth.1688.com`` / ``gw.open.1688.com``: ``GET /oauth/1688/authorize?client_id
  &site=1688&redirect_uri[&state]`` → 302 likewise; ``POST /openapi/{http|param2}/1/system.oauth2/getToken/
  <appKey>`` (both grants, either path); ``POST /openapi/param2/1/system.oauth2/postponeToken/<appKey>``.
  Every 1688 answer value is a string.
- Errors: ``{"error": ..., "error_description": ...}`` in HTTP 400 (401 for a wrong ``client_secret``):
  ``invalid_request`` (missing param, not POST, bad ``response_type``/``site``/``view``/``redirect_uri``,
  postpone refused), ``invalid_client`` (unknown ``client_id``; 1688: ``client_id`` other than the path's
  appKey), ``invalid_grant`` (code or refresh token unknown, used, expired, revoked, or not bound to this
  ``redirect_uri``), ``unsupported_grant_type``. An authorise error never redirects; ``deny=1`` (the
  sandbox's own switch: the seller refuses) redirects with ``error=access_denied&error_description=
  authorize%20reject``. Checks run in this order: POST → ``client_id`` → ``client_secret`` →
  ``grant_type`` → the grant's own params.

Choices where §8 is silent [unconfirmed]:

- Codes (``secrets.token_urlsafe``) are bound to the platform, ``client_id`` and ``redirect_uri``; valid
  30 min (TOP) / 2 min (1688); a code is spent by the first exchange that names it with a valid client,
  even one that fails on its ``redirect_uri``. Any absolute http(s) ``redirect_uri`` is accepted.
- Tokens: TOP sessions ``6201`` + 36 hex, TOP refresh tokens ``6202`` + 36 hex, 1688 both random UUIDs.
  A token is accepted only by the platform that issued it. ``expires_in`` / ``re_expires_in`` are whole
  seconds rounded down; ``expire_time`` / ``refresh_token_valid_time`` / ``*_valid`` are exact ms.
- TOP refresh rotates: a new session and a new refresh token, the old refresh token refused at once (the
  "single use" reading of §8.1), the old session valid until its own expiry. The new refresh token
  keeps the expiry of the one it replaces: refreshing never extends the grant.
- 1688 refresh: a new access token, the refresh token unchanged. ``postponeToken`` needs a live access
  token (or ``--session``) and a refresh token expiring within 30 days; it answers the getToken fields
  with a new access token and a new refresh token of ``refresh_ttl`` (the old one is refused from then).
- 1688 code exchange issues a refresh token only with ``need_refresh_token=true`` and ``refresh_ttl`` > 0.
- Seller identity: ``taobao_user_nick`` / ``resource_owner`` = ``--seller`` (the nick URL-encoded, UTF-8);
  ``taobao_user_id`` = ``aliId`` = ``str(2_000_000_000 + int(sha256("shopcrawl-sandbox-seller:<seed>")
  .hexdigest()[:12], 16) % 1_000_000_000)`` (10 digits); ``memberId`` = ``"b2b-" + aliId + "a"``.
- Tokens are kept for the life of the process. Nothing here logs a token, code or secret.

``GET /_sandbox/oauth`` → ``{"calls": {"authorize", "authorization_code", "refresh_token", "postpone",
"errors"}, "expired_answers", "token_ttl", "refresh_ttl", "live_tokens"}``: calls received per kind
(a refused one counts under its kind and under ``errors``; ``errors`` also counts calls of no known
kind and ``deny=1`` refusals); API answers given for an issued token past its expiry; the lifetimes
tokens are issued with now; access tokens not yet expired. ``POST /_sandbox/oauth`` with any of
``{"token_ttl": s, "refresh_ttl": s, "revoke_refresh": true, "expire_access": true}`` applies them and
answers the same shape; HTTP 400 ``{"error": ...}`` on a bad body.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from shopcrawl.platforms.aop.protocol import format_time
from shopcrawl.platforms.top import GMT8

from .checks import TokenState

if TYPE_CHECKING:
    from .app import Sandbox

logger = logging.getLogger(__name__)

Platform = Literal["top", "1688"]
TOP_BASE = "/oauth/top"
AOP_AUTHORIZE = "/oauth/1688/authorize"
AOP_GET_TOKEN = "/openapi/{proto:http|param2}/1/system.oauth2/getToken/{app_key}"
AOP_POSTPONE = "/openapi/param2/1/system.oauth2/postponeToken/{app_key}"
CODE_TTL: dict[Platform, float] = {"top": 1800.0, "1688": 120.0}
POSTPONE_WINDOW = 30 * 86400.0
GRANTS = ("authorization_code", "refresh_token")
CALL_KINDS = ("authorize", *GRANTS, "postpone", "errors")
_CONTROL_KEYS = frozenset({"token_ttl", "refresh_ttl", "revoke_refresh", "expire_access"})


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.error, self.description, self.status = error, description, status


@dataclass
class _Code:
    platform: Platform
    client_id: str
    redirect_uri: str
    expires_at: float


@dataclass
class _Access:
    platform: Platform
    expires_at: float


@dataclass
class _Refresh:
    platform: Platform
    expires_at: float
    dead: str = ""  # why it is refused before its expiry: "", "used", "revoked", "postponed"


@dataclass(frozen=True)
class Issued:
    token: str
    seconds: float  # lifetime from ``now``
    expires_at: float


def seller_user_id(seed: int) -> str:
    """The seller's numeric id (TOP ``taobao_user_id``, 1688 ``aliId``): 10 digits, stable per seed."""
    digest = hashlib.sha256(f"shopcrawl-sandbox-seller:{seed}".encode()).hexdigest()
    return str(2_000_000_000 + int(digest[:12], 16) % 1_000_000_000)


def token_timeout(epoch: float) -> str:
    """A 1688 ``refresh_token_timeout``: ``yyyyMMddHHmmssSSS+0800`` in GMT+8."""
    return format_time(datetime.fromtimestamp(epoch, GMT8))


def _whole(seconds: float) -> int:
    return max(0, int(seconds + 1e-6))


def _ms(epoch: float) -> int:
    return int(epoch * 1000)


class TokenStore:
    """Codes, access tokens and refresh tokens of both platforms, and the ``/_sandbox/oauth`` counters."""

    def __init__(self, token_ttl: float, refresh_ttl: float) -> None:
        self.token_ttl, self.refresh_ttl = token_ttl, refresh_ttl
        self.calls: Counter[str] = Counter(dict.fromkeys(CALL_KINDS, 0))
        self.expired_answers = 0
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}

    def new_code(self, platform: Platform, client_id: str, redirect_uri: str, now: float) -> str:
        self._codes = {k: c for k, c in self._codes.items() if c.expires_at > now}
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(platform, client_id, redirect_uri, now + CODE_TTL[platform])
        return code

    def take_code(self, platform: Platform, code: str, client_id: str, redirect_uri: str, now: float) -> None:
        """Spend ``code``; raise ``invalid_grant`` unless it is live and bound to this client and URI."""
        found = self._codes.pop(code, None)
        if found is None or found.platform != platform or found.expires_at <= now:
            raise OAuthError("invalid_grant", "authorize code expire")
        if found.client_id != client_id:
            raise OAuthError("invalid_grant", "authorize code was issued to another client_id")
        if found.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri is invalidate")

    def issue_access(self, platform: Platform, now: float) -> Issued:
        token = "6201" + secrets.token_hex(18) if platform == "top" else str(uuid.uuid4())
        issued = Issued(token, self.token_ttl, now + self.token_ttl)
        self._access[token] = _Access(platform, issued.expires_at)
        return issued

    def issue_refresh(self, platform: Platform, now: float, expires_at: float) -> Issued:
        token = "6202" + secrets.token_hex(18) if platform == "top" else str(uuid.uuid4())
        self._refresh[token] = _Refresh(platform, expires_at)
        return Issued(token, expires_at - now, expires_at)

    def live_refresh(self, platform: Platform, token: str, now: float) -> _Refresh:
        """The record of a refresh token that still works; else ``invalid_grant`` saying why not."""
        found = self._refresh.get(token)
        if found is None or found.platform != platform:
            raise OAuthError("invalid_grant", "refresh_token is invalid")
        if found.dead:
            raise OAuthError("invalid_grant", f"refresh_token is invalid: {found.dead}")
        if found.expires_at <= now:
            raise OAuthError("invalid_grant", "refresh_token expire")
        return found

    def state(self, platform: Platform, token: str, now: float) -> TokenState:
        found = self._access.get(token)
        if found is None or found.platform != platform:
            return "unknown"
        return "live" if now < found.expires_at else "expired"

    def api_state(self, platform: Platform, token: str, now: float) -> TokenState:
        """:meth:`state` for an API call, which is answered at once: an expired one is counted."""
        state = self.state(platform, token, now)
        if state == "expired":
            self.expired_answers += 1
        return state

    def control(self, body: Any, now: float) -> None:
        """Apply a ``POST /_sandbox/oauth`` body, all or nothing; ``ValueError`` if it is bad."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        unknown = set(body) - _CONTROL_KEYS
        if unknown:
            raise ValueError("unknown keys: " + ", ".join(sorted(unknown)))
        for name, low_ok in (("token_ttl", False), ("refresh_ttl", True)):
            value = body.get(name, 1.0)
            number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value < 0 or (value == 0 and not low_ok):
                raise ValueError(f"{name} must be a number {'>= 0' if low_ok else '> 0'}, got {value!r}")
        for name in ("revoke_refresh", "expire_access"):
            if not isinstance(body.get(name, False), bool):
                raise ValueError(f"{name} must be true or false")
        self.token_ttl = float(body.get("token_ttl", self.token_ttl))
        self.refresh_ttl = float(body.get("refresh_ttl", self.refresh_ttl))
        if body.get("revoke_refresh"):
            for record in self._refresh.values():
                record.dead = record.dead or "revoked"
        if body.get("expire_access"):
            for access in self._access.values():
                access.expires_at = min(access.expires_at, now)

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "calls": {kind: self.calls[kind] for kind in CALL_KINDS},
            "expired_answers": self.expired_answers,
            "token_ttl": self.token_ttl,
            "refresh_ttl": self.refresh_ttl,
            "live_tokens": sum(1 for access in self._access.values() if now < access.expires_at),
        }


def _with_query(uri: str, pairs: dict[str, str]) -> str:
    """``uri`` with ``pairs`` appended to its query (``&`` if it has one), before any fragment."""
    base, hash_mark, fragment = uri.partition("#")
    joiner = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    return base + joiner + query + hash_mark + fragment


def _error_response(error: OAuthError) -> web.Response:
    body = {"error": error.error, "error_description": error.description}
    return web.json_response(body, status=error.status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"{name} is required")
    return value


async def _form(request: web.Request) -> dict[str, str]:
    """Query-string params, then form params (the query string wins); empty values dropped."""
    params = {k: v for k, v in request.query.items() if v.strip()}
    if request.body_exists:
        for key, value in (await request.post()).items():
            if isinstance(value, str) and value.strip():
                params.setdefault(key, value)
    return params


class OAuthApi:
    """The OAuth handlers and ``/_sandbox/oauth``, over one :class:`~shopcrawl.sandbox.app.Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        config = sandbox.config
        self.store = sandbox.tokens
        self.app_key, self.secret, self.session = config.app_key, config.app_secret, config.session
        self.nick = config.seller
        self.user_id = seller_user_id(config.seed)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(TOP_BASE + "/authorize", self.top_authorize)
        router.add_route("*", TOP_BASE + "/token", self.top_token)
        router.add_get(AOP_AUTHORIZE, self.aop_authorize)
        router.add_route("*", AOP_GET_TOKEN, self.aop_get_token)
        router.add_route("*", AOP_POSTPONE, self.aop_postpone)
        router.add_get("/_sandbox/oauth", self.control_view)
        router.add_post("/_sandbox/oauth", self.control_post)

    # --- authorise -------------------------------------------------------------------------------

    async def top_authorize(self, request: web.Request) -> web.Response:
        return self._authorize(request, "top")

    async def aop_authorize(self, request: web.Request) -> web.Response:
        return self._authorize(request, "1688")

    def _authorize(self, request: web.Request, platform: Platform) -> web.Response:
        self.store.calls["authorize"] += 1
        query = {k: v for k, v in request.query.items() if v.strip()}
        try:
            if platform == "top" and _required(query, "response_type") != "code":
                raise OAuthError("invalid_request", "response_type must be code")
            if _required(query, "client_id") != self.app_key:
                raise OAuthError("invalid_client", "client_id is invalid")
            redirect_uri = _required(query, "redirect_uri")
            parts = urllib.parse.urlsplit(redirect_uri)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise OAuthError("invalid_request", "redirect_uri is invalidate")
            if platform == "1688" and query.get("site") != "1688":
                raise OAuthError("invalid_request", "site must be 1688")
            if platform == "top" and query.get("view", "web") not in ("web", "tmall", "wap"):
                raise OAuthError("invalid_request", "view must be web, tmall or wap")
        except OAuthError as error:
            return self._refuse(platform, "authorize", error)
        state = {"state": request.query["state"]} if "state" in request.query else {}
        if query.get("deny") in ("1", "true"):
            self.store.calls["errors"] += 1
            logger.info("oauth %s authorize: the seller refused (deny=1)", platform)
            answer = {"error": "access_denied", "error_description": "authorize reject", **state}
        else:
            code = self.store.new_code(platform, self.app_key, redirect_uri, time.time())
            answer = {"code": code, **state}
        return web.Response(status=302, headers={"Location": _with_query(redirect_uri, answer)})

    # --- token endpoints -------------------------------------------------------------------------

    async def top_token(self, request: web.Request) -> web.Response:
        params = await _form(request)
        grant = self._count_grant(params)
        try:
            now = self._client(request, params)
            if grant == "authorization_code":
                self._take_code(params, "top", now)
                refresh_until = now + self.store.refresh_ttl if self.store.refresh_ttl > 0 else None
            else:
                record = self.store.live_refresh("top", _required(params, "refresh_token"), now)
                record.dead = "used"
                refresh_until = record.expires_at
        except OAuthError as error:
            return self._refuse("top", grant, error)
        logger.info("oauth top %s: a session was issued", grant)
        return web.json_response(self._top_answer(now, refresh_until), dumps=_dumps)

    def _top_answer(self, now: float, refresh_until: float | None) -> dict[str, Any]:
        access = self.store.issue_access("top", now)
        expires_in, expire_ms = _whole(access.seconds), _ms(access.expires_at)
        answer: dict[str, Any] = {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }
        if refresh_until is not None:
            refresh = self.store.issue_refresh("top", now, refresh_until)
            answer["refresh_token"] = refresh.token
            answer["re_expires_in"], refresh_ms = _whole(refresh.seconds), _ms(refresh.expires_at)
        else:
            answer["re_expires_in"], refresh_ms = 0, _ms(now)
        for level in ("r1", "r2", "w1", "w2"):
            answer[f"{level}_expires_in"] = expires_in
        answer.update(
            taobao_user_nick=urllib.parse.quote(self.nick, safe=""),
            taobao_user_id=self.user_id,
            expire_time=expire_ms,
            refresh_token_valid_time=refresh_ms,
            **{f"{level}_valid": expire_ms for level in ("r1", "r2", "w1", "w2")},
        )
        return answer

    async def aop_get_token(self, request: web.Request) -> web.Response:
        params = await _form(request)
        grant = self._count_grant(params)
        try:
            now = self._client(request, params, path_key=request.match_info["app_key"])
            if grant == "authorization_code":
                self._take_code(params, "1688", now)
                want = params.get("need_refresh_token", "").lower() == "true" and self.store.refresh_ttl > 0
                answer = self._aop_answer(now, now + self.store.refresh_ttl if want else None)
            else:
                self.store.live_refresh("1688", _required(params, "refresh_token"), now)
                answer = self._aop_answer(now, None)
        except OAuthError as error:
            return self._refuse("1688", grant, error)
        logger.info("oauth 1688 %s: an access token was issued", grant)
        return web.json_response(answer, dumps=_dumps)

    async def aop_postpone(self, request: web.Request) -> web.Response:
        params = await _form(request)
        self.store.calls["postpone"] += 1
        try:
            now = self._client(request, params, path_key=request.match_info["app_key"], grant=False)
            access_token = _required(params, "access_token")
            if access_token != self.session and self.store.state("1688", access_token, now) != "live":
                raise OAuthError("invalid_grant", "access_token is invalid or expired")
            record = self.store.live_refresh("1688", _required(params, "refresh_token"), now)
            if record.expires_at - now > POSTPONE_WINDOW:
                timeout = token_timeout(record.expires_at)
                raise OAuthError(
                    "invalid_request", f"refreshToken is too long to expire with expireTime {timeout}"
                )
            if self.store.refresh_ttl <= 0:
                raise OAuthError("invalid_request", "refresh tokens are not issued (refresh_ttl 0)")
            record.dead = "postponed"
            answer = self._aop_answer(now, now + self.store.refresh_ttl)
        except OAuthError as error:
            return self._refuse("1688", "postpone", error)
        logger.info("oauth 1688 postpone: a new refresh token was issued")
        return web.json_response(answer, dumps=_dumps)

    def _aop_answer(self, now: float, refresh_until: float | None) -> dict[str, str]:
        access = self.store.issue_access("1688", now)
        answer = {"aliId": self.user_id, "resource_owner": self.nick, "memberId": f"b2b-{self.user_id}a"}
        answer["expires_in"] = str(_whole(access.seconds))
        if refresh_until is not None:
            answer["refresh_token"] = self.store.issue_refresh("1688", now, refresh_until).token
            answer["refresh_token_timeout"] = token_timeout(refresh_until)
        answer["access_token"] = access.token
        return answer

    def _count_grant(self, params: dict[str, str]) -> str:
        grant = params.get("grant_type", "")
        if grant in GRANTS:
            self.store.calls[grant] += 1
        return grant

    def _client(
        self, request: web.Request, params: dict[str, str], *, path_key: str | None = None, grant: bool = True
    ) -> float:
        """Check the method, the client (``path_key``: 1688's appKey in the path) and, if ``grant``, the
        grant type; the first failure raises. Return the moment of the call."""
        if request.method != "POST":
            raise OAuthError("invalid_request", "the token endpoint must be called with POST")
        client_id = _required(params, "client_id")
        if path_key is not None and client_id != path_key:
            raise OAuthError("invalid_client", "client_id does not match the appKey in the path")
        if client_id != self.app_key:
            raise OAuthError("invalid_client", "client_id is invalid")
        if _required(params, "client_secret") != self.secret:
            raise OAuthError("invalid_client", "client_secret is invalidate", status=401)
        if grant and _required(params, "grant_type") not in GRANTS:
            raise OAuthError(
                "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
            )
        return time.time()

    def _take_code(self, params: dict[str, str], platform: Platform, now: float) -> None:
        code, redirect_uri = _required(params, "code"), _required(params, "redirect_uri")
        self.store.take_code(platform, code, self.app_key, redirect_uri, now)

    def _refuse(self, platform: Platform, kind: str, error: OAuthError) -> web.Response:
        self.store.calls["errors"] += 1
        kind = kind if kind in CALL_KINDS else "-"  # a grant_type is the caller's text: not logged as sent
        logger.info("oauth %s %s refused: %s (HTTP %d)", platform, kind, error.error, error.status)
        return _error_response(error)

    # --- control ---------------------------------------------------------------------------------

    async def control_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.snapshot(time.time()), dumps=_dumps)

    async def control_post(self, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=json.loads)
            self.store.control(body, time.time())
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            return web.json_response({"error": str(error)}, status=400, dumps=_dumps)
        logger.info("oauth control: %s", ", ".join(sorted(body)) or "(nothing)")
        return web.json_response(self.store.snapshot(time.time()), dumps=_dumps)

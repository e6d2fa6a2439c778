"""The aiohttp application: ``/router/rest`` plus the ``/_sandbox/*`` control endpoints.

Order of handling for ``/router/rest`` (GET or POST; any other HTTP method gets code 9 in HTTP 200):
merge query and form params → system/credential checks (``checks.check_system``) → unknown API method
(22) → quota ban → QPS limiter → fault draw (5xx / timeout / isp answer here) → business params and
the answer → truncated / garbled faults applied to that body. Every API error is an
``error_response`` in HTTP 200 (that TOP never uses 4xx/5xx for API errors is [unconfirmed]); only
injected faults use other statuses. Bodies are ``application/json`` or ``text/xml``, UTF-8.

Control endpoints (no signature, not counted as API calls):

- ``GET /_sandbox/stats`` → ``{"calls": {method: n}, "outcomes": {outcome: n}, "bans": [[start, end]],
  "items": on-sale count}`` (``bans``: the QPS bans started, unix times; quota bans are not listed);
  ``POST /_sandbox/reset-stats`` clears the counters and ban records (not the
  limiter state) and answers the cleared stats.
- ``POST /_sandbox/mutate`` with ``{"seed": int, "price_up": n, "price_down": n, "sold_out": n,
  "new": n, "delist": n}`` (all optional but ``seed``) → ``{kind: [num_iid, ...]}`` for every kind;
  HTTP 400 ``{"error": ...}`` on a bad body.
- ``GET /_sandbox/shop`` → the on-sale items as full records (``?all=1`` adds delisted items).
- ``GET /_sandbox/bad-items`` → ``{"invalid": {num_iid: kind}, "isv": [...], "vanish": [...],
  "hostile": [...]}``.
- ``GET /_sandbox/oauth`` → ``{"calls": {"authorize": n, "authorization_code": n, "refresh_token": n,
  "postpone": n, "errors": n}, "expired_answers": n, "token_ttl": s, "refresh_ttl": s, "live_tokens": n}``;
  ``POST /_sandbox/oauth`` with any of ``{"token_ttl": s, "refresh_ttl": s, "revoke_refresh": true,
  "expire_access": true}`` → the same shape (HTTP 400 ``{"error": ...}`` on a bad body). See ``oauth``.

The OAuth endpoints of both platforms (``/oauth/top/authorize``, ``/oauth/top/token``,
``/oauth/1688/authorize``, ``/openapi/{http,param2}/1/system.oauth2/getToken/<appKey>``,
``/openapi/param2/1/system.oauth2/postponeToken/<appKey>``) are described in ``oauth``. The sessions
and access tokens they issue are accepted by ``/router/rest`` and the 1688 API besides ``--session``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from shopcrawl.platforms.top import DETAIL_METHOD, LISTING_METHOD

from . import render
from .aop import AOP_PATH, AopApi
from .checks import Credentials, TokenState, TopError, check_system, parse_detail, parse_listing
from .config import SandboxConfig
from .faults import FaultPlan, RateLimiter, ban_error, html_error
from .gateway import GatewayApi
from .oauth import OAuthApi, TokenStore
from .shop import MUTATION_KINDS, Shop
from .stats import Stats
from .synth import HOSTILE_EXTRAS

logger = logging.getLogger(__name__)

API_PATH = "/router/rest"
_JSON = "application/json"
_XML = "text/xml"


class Sandbox:
    """All state of one emulator instance; the handlers are its methods."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.shop = Shop(
            seed=config.seed,
            items=config.items,
            nick=config.seller,
            max_skus=config.max_skus,
            invalid_items=config.invalid_items,
            isv_items=config.isv_items,
            vanish_items=config.vanish_items,
            hostile_items=config.hostile_items,
        )
        self.creds = Credentials(config.app_key, config.app_secret, config.session)
        self.tokens = TokenStore(config.token_ttl, config.refresh_ttl)
        self.limiter = RateLimiter(config.qps, config.ban_seconds)
        self.faults = FaultPlan(
            config.seed,
            rate_5xx=config.rate_5xx,
            rate_timeout=config.rate_timeout,
            rate_truncated=config.rate_truncated,
            rate_garbled=config.rate_garbled,
            rate_isp=config.rate_isp,
        )
        self.stats = Stats(config.call_log)
        self.cache = render.ItemJsonCache(self.shop.all_items)
        self._apis: dict[str, Callable[[dict[str, str], bool, bool, str], bytes]] = {
            LISTING_METHOD: self._listing,
            DETAIL_METHOD: self._detail,
        }
        self._request_seq = int(time.time()) % 100_000 * 1_000_000

    def _request_id(self) -> str:
        self._request_seq += 1
        return f"{self._request_seq:x}"

    async def api(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        params = await _merged_params(request)
        method = params.get("method", "")
        as_json = params.get("format") == "json"
        simplify = as_json and params.get("simplify", "").lower() == "true"
        request_id = self._request_id()
        fault: str | None = None
        ban_until: float | None = None
        try:
            if request.method not in ("GET", "POST"):
                raise TopError(9, "Http Action Not Allowed")
            check_system(params, self.creds, now, self._top_session)
            answer = self._apis.get(method)
            if answer is None:
                raise TopError(22, "Invalid Method")
            self._flow_control(params["app_key"], method, now)
            fault = self.faults.draw()
            failed = await self.transport_fault(fault, now, method)
            if failed is not None:
                return failed
            if fault == "isp":
                raise self.faults.isp_error()
            body = answer(params, as_json, simplify, request_id)
            outcome = "ok"
        except TopError as error:
            body = render.error_body(error.as_dict(request_id), as_json)
            outcome, ban_until = error.outcome, error.ban_until
        body, outcome = self.body_fault(fault, body, outcome)
        self.stats.record(now, method, outcome, ban_until)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s", request_id, method or "-", outcome)
        return web.Response(body=body, content_type=_JSON if as_json else _XML, charset="utf-8")

    async def transport_fault(self, fault: str | None, now: float, api: str) -> web.Response | None:
        """The HTTP answer of a drawn 5xx or timeout fault (any API), or None for the others."""
        if fault == "5xx":
            status = self.faults.status_5xx()
            self.stats.record(now, api, "5xx", None)
            return web.Response(status=status, body=html_error(status), content_type="text/html")
        if fault == "timeout":
            self.stats.record(now, api, "timeout", None)
            await asyncio.sleep(self.config.timeout_delay)
            return web.Response(status=504, body=html_error(504), content_type="text/html")
        return None

    def body_fault(self, fault: str | None, body: bytes, outcome: str) -> tuple[bytes, str]:
        """The answer's body and outcome after a drawn truncated or garbled fault (any API)."""
        if fault == "truncated":
            return body[: len(body) // 2], "truncated"
        if fault == "garbled":
            return self.faults.garbage(), "garbled"
        return body, outcome

    def _top_session(self, session: str, now: float) -> TokenState:
        return self.tokens.api_state("top", session, now)

    def _flow_control(self, app_key: str, method: str, now: float) -> None:
        if self.config.quota_ban_seconds > 0:
            seconds = self.config.quota_ban_seconds
            raise ban_error(seconds, now + seconds, app_wide=True)
        refused = self.limiter.admit((app_key, method), now)
        if refused is not None:
            until, started = refused
            if started:
                self.stats.add_ban(now, until)
                logger.info("QPS above %d for %s: ban until %.3f", self.config.qps, method, until)
            raise ban_error(until - now, until)

    def _listing(self, params: dict[str, str], as_json: bool, simplify: bool, request_id: str) -> bytes:
        query = parse_listing(params, self.config.page_cap)
        found = self.shop.listing(
            order=query.order, descending=query.descending, start=query.start, end=query.end, q=query.q
        )
        page = found.page((query.page_no - 1) * query.page_size, query.page_size)
        if not as_json:
            items = [render.item_dict(item, query.fields, False) for item in page]
            return render.xml_items_body(LISTING_METHOD, items, found.total, request_id)
        self.cache.sync(self.shop.version)
        items_json = self.cache.items_json(page, query.fields, simplify)
        return render.json_items_body(LISTING_METHOD, simplify, items_json, found.total, request_id)

    def _detail(self, params: dict[str, str], as_json: bool, simplify: bool, request_id: str) -> bytes:
        query = parse_detail(params)
        found = [
            item
            for num_iid in query.num_iids
            if (item := self.shop.get(num_iid)) is not None and not item.vanish
        ]
        for item in found:
            if item.isv:
                raise TopError(
                    15,
                    "Remote service error",
                    "isv.item-data-error",
                    f"商品数据异常 num_iid={item.num_iid}",
                    outcome="isv",
                )
        if not as_json:
            items = [render.item_dict(item, query.fields, False) for item in found]
            return render.xml_items_body(DETAIL_METHOD, items, None, request_id)
        self.cache.sync(self.shop.version)
        items_json = self.cache.items_json(found, query.fields, simplify)
        extras = render.dumps(HOSTILE_EXTRAS)[1:-1]
        items_json = [
            text[:-1] + "," + extras + "}" if item.hostile else text
            for item, text in zip(found, items_json, strict=True)
        ]
        return render.json_items_body(DETAIL_METHOD, simplify, items_json, None, request_id)

    async def stats_view(self, request: web.Request) -> web.Response:
        return _json_response(self.stats.snapshot(self.shop.onsale_count))

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.stats.reset()
        return _json_response(self.stats.snapshot(self.shop.onsale_count))

    async def shop_view(self, request: web.Request) -> web.Response:
        include = request.query.get("all", "") in ("1", "true")
        return _json_response(self.shop.dump(include_instock=include))

    async def bad_items(self, request: web.Request) -> web.Response:
        return _json_response(self.shop.bad_items())

    async def mutate(self, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=json.loads)
            if not isinstance(body, dict) or not isinstance(body.get("seed"), int):
                raise ValueError('the body must be a JSON object with an integer "seed"')
            unknown = set(body) - {"seed", *MUTATION_KINDS}
            if unknown:
                raise ValueError("unknown keys: " + ", ".join(sorted(unknown)))
            changed = self.shop.mutate(**body)
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            return _json_response({"error": str(error)}, status=400)
        logger.info("mutation %s: %s", body, {kind: len(ids) for kind, ids in changed.items()})
        return _json_response(changed)


async def _merged_params(request: web.Request) -> dict[str, str]:
    """Query-string params first (they win), then the form body; empty values dropped."""
    params = {key: value for key, value in request.query.items() if value.strip()}
    if request.body_exists:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str) and value.strip():
                params.setdefault(key, value)
    return params


def _json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=render.dumps(value).encode("utf-8"), status=status, content_type=_JSON, charset="utf-8"
    )


SANDBOX_KEY = web.AppKey("sandbox", Sandbox)


def _latency(seconds: float) -> Any:
    """Middleware holding every API call ``seconds`` before it is handled (control endpoints pass)."""

    @web.middleware
    async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/_sandbox/"):
            await asyncio.sleep(seconds)
        response: web.StreamResponse = await handler(request)
        return response

    return hold


def create_app(config: SandboxConfig) -> web.Application:
    sandbox = Sandbox(config)
    middlewares = [_latency(config.latency_ms / 1000)] if config.latency_ms > 0 else []
    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=middlewares)
    app[SANDBOX_KEY] = sandbox
    app.router.add_route("*", API_PATH, sandbox.api)
    app.router.add_route("*", AOP_PATH, AopApi(sandbox).handle)
    gateway = GatewayApi(sandbox)
    app.router.add_get("/{platform}/{api:item_search_shop|item_get}/", gateway.handle)
    app.router.add_get("/_sandbox/stats", sandbox.stats_view)
    app.router.add_post("/_sandbox/reset-stats", sandbox.reset_stats)
    app.router.add_post("/_sandbox/mutate", sandbox.mutate)
    app.router.add_get("/_sandbox/shop", sandbox.shop_view)
    app.router.add_get("/_sandbox/bad-items", sandbox.bad_items)
    OAuthApi(sandbox).add_routes(app.router)
    app.on_cleanup.append(_close_stats)
    return app


async def _close_stats(app: web.Application) -> None:
    app[SANDBOX_KEY].stats.close()

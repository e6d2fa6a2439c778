"""The aiohttp application: ``/router/rest`` plus the ``/_sandbox/*`` control endpoints.

Order of handling for ``/router/rest`` (GET or POST; any other HTTP method gets code 9 in HTTP 200):
merge query and form params → system/credential checks (``checks.check_system``) → unknown API method
(22) → quota ban → QPS limiter → fault draw (5xx / timeout / isp answer here) → business params and
the answer → truncated / garbled faults applied to that body. Every API error is an
``error_response`` in HTTP 200 (that TOP never uses 4xx/5xx for API errors is [unconfirmed]); only
injected faults use other statuses. Bodies are ``application/json`` or ``text/xml``, UTF-8.

Which shop a call reads (see ``shops``): TOP's ``session`` and 1688's ``access_token`` select it
(``--session``: the default shop; ``<--session>-shop-NNN``: that extra shop; an OAuth-issued token:
the default shop), the gateway's ``shop_id`` names it. ``--qps`` counts per (app_key, API method)
across all shops, as one platform limit would.

Control endpoints (no signature, not counted as API calls; ``seller`` defaults to the default shop's
nick, and an unknown one is HTTP 404 ``{"error": ...}``, 400 in a ``mutate`` body):

- ``GET /_sandbox/stats`` → ``{"calls": {method: n}, "outcomes": {outcome: n}, "bans": [[start, end]],
  "items": on-sale count of the default shop, "by_seller": {seller: {method: n}}}`` (``bans``: the QPS
  bans started, unix times; quota bans are not listed; ``by_seller`` counts the calls whose
  credentials selected a shop, or for the gateway whose ``shop_id`` or item a shop has, whatever
  their outcome); ``POST /_sandbox/reset-stats`` clears the counters and ban records (not the
  limiter state) and answers the cleared stats.
- ``GET /_sandbox/shops`` → ``[{"seller", "items", "session"}]`` for every shop, the default first:
  its on-sale count (an extra shop not built yet: the count it will have) and its TOP/1688 session.
- ``POST /_sandbox/mutate`` with ``{"seed": int, "seller": str, "price_up": n, "price_down": n,
  "sold_out": n, "new": n, "delist": n}`` (all optional but ``seed``) → ``{kind: [num_iid, ...]}`` for
  every kind; HTTP 400 ``{"error": ...}`` on a bad body.
- ``GET /_sandbox/shop?seller=S`` → the shop's on-sale items as full records (``&all=1`` adds
  delisted items).
- ``GET /_sandbox/bad-items?seller=S`` → ``{"invalid": {num_iid: kind}, "isv": [...], "vanish": [...],
  "hostile": [...]}`` (only the default shop has bad items).
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
from .control import Control
from .faults import FaultPlan, RateLimiter, ban_error, html_error
from .gateway import GatewayApi
from .oauth import OAuthApi, TokenStore
from .shop import Shop
from .shops import Shops
from .stats import Stats
from .synth import HOSTILE_EXTRAS

logger = logging.getLogger(__name__)

API_PATH = "/router/rest"
_JSON = "application/json"
_XML = "text/xml"

# A TOP API: (the shop, params, as_json, simplify, request_id) -> the body.
_TopApi = Callable[[Shop, dict[str, str], bool, bool, str], bytes]


class Sandbox:
    """All state of one emulator instance; the handlers are its methods."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.shops = Shops(config)
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
        self._json_caches: dict[str, render.ItemJsonCache] = {}
        self._apis: dict[str, _TopApi] = {LISTING_METHOD: self._listing, DETAIL_METHOD: self._detail}
        self._request_seq = int(time.time()) % 100_000 * 1_000_000

    def _request_id(self) -> str:
        self._request_seq += 1
        return f"{self._request_seq:x}"

    def token_shop(self, token: str) -> Shop:
        """The shop an accepted TOP session / 1688 access token selects (an issued one: the default)."""
        seller = self.shops.seller_of_session(token)
        shop = None if seller is None else self.shops.get(seller)
        return self.shops.default if shop is None else shop

    async def api(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        params = await _merged_params(request)
        method = params.get("method", "")
        as_json = params.get("format") == "json"
        simplify = as_json and params.get("simplify", "").lower() == "true"
        request_id = self._request_id()
        fault: str | None = None
        ban_until: float | None = None
        seller: str | None = None
        try:
            if request.method not in ("GET", "POST"):
                raise TopError(9, "Http Action Not Allowed")
            check_system(params, self.creds, now, self._top_session)
            shop = self.token_shop(params["session"])
            seller = shop.nick
            answer = self._apis.get(method)
            if answer is None:
                raise TopError(22, "Invalid Method")
            self._flow_control(params["app_key"], method, now)
            fault = self.faults.draw()
            failed = await self.transport_fault(fault, now, method, seller)
            if failed is not None:
                return failed
            if fault == "isp":
                raise self.faults.isp_error()
            body = answer(shop, params, as_json, simplify, request_id)
            outcome = "ok"
        except TopError as error:
            body = render.error_body(error.as_dict(request_id), as_json)
            outcome, ban_until = error.outcome, error.ban_until
        body, outcome = self.body_fault(fault, body, outcome)
        self.stats.record(now, method, outcome, ban_until, seller)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s %s -> %s", request_id, seller or "-", method or "-", outcome)
        return web.Response(body=body, content_type=_JSON if as_json else _XML, charset="utf-8")

    async def transport_fault(
        self, fault: str | None, now: float, api: str, seller: str | None
    ) -> web.Response | None:
        """The HTTP answer of a drawn 5xx or timeout fault (any API), or None for the others."""
        if fault == "5xx":
            status = self.faults.status_5xx()
            self.stats.record(now, api, "5xx", None, seller)
            return web.Response(status=status, body=html_error(status), content_type="text/html")
        if fault == "timeout":
            self.stats.record(now, api, "timeout", None, seller)
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
        if self.shops.seller_of_session(session) is not None:
            return "live"
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

    def _json_cache(self, shop: Shop) -> render.ItemJsonCache:
        cache = self._json_caches.get(shop.nick)
        if cache is None:
            cache = self._json_caches[shop.nick] = render.ItemJsonCache(shop.all_items)
        cache.sync(shop.version)
        return cache

    def _listing(
        self, shop: Shop, params: dict[str, str], as_json: bool, simplify: bool, request_id: str
    ) -> bytes:
        query = parse_listing(params, self.config.page_cap)
        found = shop.listing(
            order=query.order, descending=query.descending, start=query.start, end=query.end, q=query.q
        )
        page = found.page((query.page_no - 1) * query.page_size, query.page_size)
        if not as_json:
            items = [render.item_dict(item, query.fields, False) for item in page]
            return render.xml_items_body(LISTING_METHOD, items, found.total, request_id)
        items_json = self._json_cache(shop).items_json(page, query.fields, simplify)
        return render.json_items_body(LISTING_METHOD, simplify, items_json, found.total, request_id)

    def _detail(
        self, shop: Shop, params: dict[str, str], as_json: bool, simplify: bool, request_id: str
    ) -> bytes:
        query = parse_detail(params)
        found = [
            item for num_iid in query.num_iids if (item := shop.get(num_iid)) is not None and not item.vanish
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
        items_json = self._json_cache(shop).items_json(found, query.fields, simplify)
        extras = render.dumps(HOSTILE_EXTRAS)[1:-1]
        items_json = [
            text[:-1] + "," + extras + "}" if item.hostile else text
            for item, text in zip(found, items_json, strict=True)
        ]
        return render.json_items_body(DETAIL_METHOD, simplify, items_json, None, request_id)


async def _merged_params(request: web.Request) -> dict[str, str]:
    """Query-string params first (they win), then the form body; empty values dropped."""
    params = {key: value for key, value in request.query.items() if value.strip()}
    if request.body_exists:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str) and value.strip():
                params.setdefault(key, value)
    return params


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
    Control(sandbox).add_routes(app.router)
    OAuthApi(sandbox).add_routes(app.router)
    app.on_cleanup.append(_close_stats)
    return app


async def _close_stats(app: web.Application) -> None:
    app[SANDBOX_KEY].stats.close()

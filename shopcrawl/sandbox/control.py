"""The ``/_sandbox/*`` control endpoints but ``/_sandbox/oauth`` (which ``oauth`` serves); their
requests and answers are listed in ``app``'s docstring. None is signed or counted as an API call."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import render
from .shop import MUTATION_KINDS, Shop

if TYPE_CHECKING:
    from .app import Sandbox

logger = logging.getLogger(__name__)


class UnknownSeller(ValueError):
    pass


class Control:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/_sandbox/stats", self.stats)
        router.add_post("/_sandbox/reset-stats", self.reset_stats)
        router.add_get("/_sandbox/shops", self.shops)
        router.add_post("/_sandbox/mutate", self.mutate)
        router.add_get("/_sandbox/shop", self.shop)
        router.add_get("/_sandbox/bad-items", self.bad_items)

    def _shop(self, seller: Any) -> Shop:
        """The shop of ``seller`` (None: the default shop); ``UnknownSeller`` if no such shop is served."""
        if seller is None:
            return self.sandbox.shops.default
        shop = self.sandbox.shops.get(seller) if isinstance(seller, str) else None
        if shop is None:
            raise UnknownSeller(f"no shop has the seller {seller!r} (GET /_sandbox/shops lists them)")
        return shop

    async def stats(self, request: web.Request) -> web.Response:
        return _json_response(self.sandbox.stats.snapshot(self.sandbox.shops.default.onsale_count))

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.sandbox.stats.reset()
        return await self.stats(request)

    async def shops(self, request: web.Request) -> web.Response:
        return _json_response(self.sandbox.shops.summary())

    async def shop(self, request: web.Request) -> web.Response:
        try:
            shop = self._shop(request.query.get("seller"))
        except UnknownSeller as error:
            return _json_response({"error": str(error)}, status=404)
        include = request.query.get("all", "") in ("1", "true")
        return _json_response(shop.dump(include_instock=include))

    async def bad_items(self, request: web.Request) -> web.Response:
        try:
            shop = self._shop(request.query.get("seller"))
        except UnknownSeller as error:
            return _json_response({"error": str(error)}, status=404)
        return _json_response(shop.bad_items())

    async def mutate(self, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=json.loads)
            if not isinstance(body, dict) or not isinstance(body.get("seed"), int):
                raise ValueError('the body must be a JSON object with an integer "seed"')
            unknown = set(body) - {"seed", "seller", *MUTATION_KINDS}
            if unknown:
                raise ValueError("unknown keys: " + ", ".join(sorted(unknown)))
            kinds = dict(body)
            shop = self._shop(kinds.pop("seller", None))
            changed = shop.mutate(**kinds)
        except ValueError as error:  # json.JSONDecodeError and UnknownSeller are ValueErrors
            return _json_response({"error": str(error)}, status=400)
        counts = {kind: len(ids) for kind, ids in changed.items()}
        logger.info("mutation of %s %s: %s", shop.nick, kinds, counts)
        return _json_response(changed)


def _json_response(value: Any, status: int = 200) -> web.Response:
    body = render.dumps(value).encode("utf-8")
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")

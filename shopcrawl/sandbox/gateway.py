"""The gateway emulator: ``GET /{platform}/item_search_shop/`` and ``/{platform}/item_get/`` over the
same synthetic shop as ``/router/rest`` (api-protocols.md §3, §7.2).

Order of handling: platform and API → ``key``/``secret`` (else ``"4005"``) → quota (``--quota-ban-seconds``
> 0: ``"4007"``) → QPS limiter (``"4000"``, no ban length) → fault draw (5xx / timeout as for TOP; the
isp fault answers ``"4000"``-``"4002"`` in turn) → business params (``"4003"``) and the answer → truncated
/ garbled faults. Every API answer is HTTP 200 JSON with a string ``error_code``.

Choices the protocol doc leaves open [unconfirmed]:

- Page size ``--gateway-page-size``, depth cap ``--gateway-max-pages``; ``page_count`` =
  min(cap, pages of the query); a page past it, or past the end, answers ``"2000"``. ``shop_id`` must be
  a served shop's nick (``--seller`` or ``shop-NNN``); another shop answers ``"2000"``. ``item_get``
  finds the item in any shop (see ``shops``).
- Sorts: taobao ``new`` ``bid`` ``_bid`` ``sale`` ``_sale``, 1688 ``bid`` ``_bid`` ``_sale`` ``_credit``
  ``time`` (no sort: ``bid``). ``bid`` is (price, num_iid) ascending and ``_bid`` its exact reverse;
  ``sale`` is (sales, num_iid) and ``_sale`` its reverse; ``new``/``time`` newest listed first
  (list time descending, then num_iid); ``_credit`` (cid, num_iid) descending.
- 1688 ``start_price`` / ``end_price`` (元, inclusive) filter the item price; ``total_results`` counts
  the matching items. Taobao ignores them.
- Loose types, deterministic per item: ``num_iid`` a string for even ids; prices a JSON number for ids
  divisible by 3 (SKUs: sku ids divisible by 3); counts strings for ids ≡ 0, 1 (mod 5); ``page``,
  ``total_results`` strings on odd pages; ``has_next_page`` cycles ``"true"``, ``true``, ``1``.
- ``item_get``: ``modified_time`` is left out for ids divisible by 7; 1688 items carry ``min_num`` and
  three ``priceRange`` tiers (1, 10, 100 pieces; 100 %, 95 %, 90 % of the price). Vanishing and isv items
  answer ``"2000"`` (item not found).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import cycle
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shopcrawl.money import PriceError, format_fen, to_fen

from .render import format_time
from .shop import Shop
from .synth import HOSTILE_EXTRAS, Item

if TYPE_CHECKING:
    from .app import Sandbox

logger = logging.getLogger(__name__)

PLATFORMS = ("taobao", "1688")
SORTS = {
    "taobao": ("new", "bid", "_bid", "sale", "_sale"),
    "1688": ("bid", "_bid", "_credit", "_sale", "time"),
}
MESSAGES = {
    "2000": "Search success but no result",
    "4000": "Server internal error",
    "4001": "Network error",
    "4002": "Target server error",
    "4003": "Param error",
    "4005": "Invalid authentication credentials",
    "4007": "Account stopped: the quota is spent",
}
_NUMBER = "\u0001num:"
_NUMBER_RE = re.compile(r'"\\u0001num:([0-9.]+)"')
_BOOLS: tuple[Any, ...] = ("true", True, 1)


class GatewayError(Exception):
    def __init__(self, code: str, reason: str = "", error: str = "", outcome: str = "") -> None:
        super().__init__(f"{code} {reason}")
        self.code, self.reason, self.error = code, reason or MESSAGES.get(code, ""), error
        self.outcome = outcome or f"gw_{code}"


def _fen(price: str) -> int:
    try:
        return to_fen(price)
    except PriceError:
        return 0  # a deliberately invalid price sorts first


def _price(text: str, exact_number: bool) -> Any:
    """A price as a string, or (for some items) as a bare JSON number with the same digits."""
    return _NUMBER + text if exact_number and re.fullmatch(r"[0-9]+\.[0-9]+", text) else text


def _count(value: int, num_iid: int) -> Any:
    return str(value) if num_iid % 5 in (0, 1) else value


def _id(num_iid: int) -> Any:
    return str(num_iid) if num_iid % 2 == 0 else num_iid


def dumps(value: Any) -> bytes:
    """JSON, with the marked prices written as bare numbers (exact digits, e.g. ``28.50``)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _NUMBER_RE.sub(r"\1", text).encode("utf-8")


class Orders:
    """The on-sale items in every sort order, rebuilt when the shop changes."""

    def __init__(self) -> None:
        self.version = -1
        self.by_sort: dict[str, list[Item]] = {}
        self.bid_fen: list[int] = []

    def sync(self, version: int, onsale: list[Item]) -> None:
        if version == self.version:
            return
        bid = sorted(onsale, key=lambda i: (_fen(i.price), i.num_iid))
        sale = sorted(onsale, key=lambda i: (i.sold_quantity, i.num_iid))
        new = sorted(onsale, key=lambda i: (-i.list_time, i.num_iid))
        credit = sorted(onsale, key=lambda i: (i.cid, i.num_iid), reverse=True)
        self.by_sort = {
            "bid": bid,
            "_bid": bid[::-1],
            "sale": sale,
            "_sale": sale[::-1],
            "new": new,
            "time": new,
            "_credit": credit,
        }
        self.bid_fen = [_fen(i.price) for i in bid]
        self.version = version


class GatewayApi:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.config = sandbox.config
        self._orders: dict[str, Orders] = {}  # per seller
        self._errors = cycle(("4000", "4001", "4002"))
        self._apis: dict[str, Callable[[str, dict[str, str]], dict[str, Any]]] = {
            "item_search_shop": self._listing,
            "item_get": self._detail,
        }

    async def handle(self, request: web.Request) -> web.Response:
        now = time.time()
        sandbox = self.sandbox
        platform = request.match_info["platform"]
        api = request.match_info["api"]
        params = {k: v for k, v in request.query.items() if v.strip()}
        request_id = sandbox._request_id()
        fault: str | None = None
        seller: str | None = None
        try:
            if platform not in PLATFORMS:
                raise GatewayError("4003", f"unknown platform {platform!r}")
            if params.get("key") != self.config.app_key or params.get("secret") != self.config.app_secret:
                raise GatewayError("4005", error="auth-failed", outcome="auth")
            seller = self._seller(api, params)
            if self.config.quota_ban_seconds > 0:
                raise GatewayError("4007", error="quota-spent", outcome="quota")
            if sandbox.limiter.admit((self.config.app_key, api), now) is not None:
                raise GatewayError("4000", "too many requests per second", "qps-limit", outcome="qps")
            fault = sandbox.faults.draw()
            failed = await sandbox.transport_fault(fault, now, api, seller)
            if failed is not None:
                return failed
            if fault == "isp":
                raise GatewayError(next(self._errors), outcome="isp")
            business = {k: v for k, v in params.items() if k not in ("key", "secret")}
            body = {**self._apis[api](platform, business), **self._envelope("0000", platform, request_id)}
            body["call_args"] = business
            outcome = "ok"
        except GatewayError as error:
            body = {**error_fields(error), **self._envelope(error.code, platform, request_id)}
            outcome = error.outcome
        data = dumps(body)
        data, outcome = sandbox.body_fault(fault, data, outcome)
        sandbox.stats.record(now, api, outcome, None, seller)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s/%s -> %s", request_id, platform, api, outcome)
        return web.Response(body=data, content_type="application/json", charset="utf-8")

    def _seller(self, api: str, params: dict[str, str]) -> str | None:
        """The served shop a call names: ``item_search_shop``'s ``shop_id``, ``item_get``'s item's shop."""
        shops = self.sandbox.shops
        if api == "item_search_shop":
            shop = shops.get(params.get("shop_id", ""))
            return None if shop is None else shop.nick
        raw = params.get("num_iid", "")
        found = shops.find_item(int(raw)) if raw.isascii() and raw.isdigit() else None
        return None if found is None else found[0].nick

    def _envelope(self, code: str, platform: str, request_id: str) -> dict[str, Any]:
        return {
            "error_code": code,
            "success": 1 if code == "0000" else 0,
            "cache": 0,
            "api_info": f"today:{sum(self.sandbox.stats.calls.values()) + 1} max:10000",
            "execution_time": "0.004",
            "server_time": time.strftime("Beijing/%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600)),
            "api_type": platform,
            "request_id": request_id,
        }

    # -- item_search_shop ------------------------------------------------------------------------

    def _matching(self, shop: Shop, platform: str, sort: str, params: dict[str, str]) -> list[Item]:
        orders = self._orders.setdefault(shop.nick, Orders())
        orders.sync(shop.version, [i for i in shop.all_items() if i.onsale])
        ordered = orders.by_sort[sort]
        if platform != "1688" or not ("start_price" in params or "end_price" in params):
            return ordered
        try:
            low = to_fen(params.get("start_price", "0"))
            high = to_fen(params["end_price"]) if "end_price" in params else None
        except PriceError as exc:
            raise GatewayError("4003", f"start_price/end_price: {exc}") from None
        if sort in ("bid", "_bid"):
            lo = bisect_left(orders.bid_fen, low)
            hi = len(ordered) if high is None else max(lo, bisect_right(orders.bid_fen, high))
            window = orders.by_sort["bid"][lo:hi]
            return window if sort == "bid" else window[::-1]
        return [i for i in ordered if low <= _fen(i.price) and (high is None or _fen(i.price) <= high)]

    def _listing(self, platform: str, params: dict[str, str]) -> dict[str, Any]:
        sort = params.get("sort", "bid")
        if sort not in SORTS[platform]:
            raise GatewayError("4003", f"sort must be one of {', '.join(SORTS[platform])}")
        page = params.get("page", "1")
        if not page.isascii() or not page.isdigit() or int(page) < 1:
            raise GatewayError("4003", f"page must be a positive integer, got {page!r}")
        page_no = int(page)
        if "shop_id" not in params:
            raise GatewayError("4003", "shop_id is required")
        shop = self.sandbox.shops.get(params["shop_id"])
        found = [] if shop is None else self._matching(shop, platform, sort, params)
        size = self.config.gateway_page_size
        page_count = min(self.config.gateway_max_pages, math.ceil(len(found) / size))
        if page_no > page_count:
            raise GatewayError("2000", error="no-result")
        rows = [self._row(item, params["shop_id"]) for item in found[(page_no - 1) * size : page_no * size]]
        odd = page_no % 2 == 1
        return {
            "items": {
                "shop_id": params["shop_id"],
                "page": page if odd else page_no,
                "page_size": size,
                "real_total_results": str(len(found)),
                "total_results": str(len(found)) if odd else len(found),
                "page_count": page_count,
                "has_next_page": _BOOLS[page_no % 3] if page_no < page_count else "false",
                "item": rows,
            }
        }

    def _row(self, item: Item, shop_id: str) -> dict[str, Any]:
        number = item.num_iid % 3 == 0
        return {
            "num_iid": _id(item.num_iid),
            "title": item.title,
            "price": _price(item.price, number),
            "promotion_price": _price(item.price, number),
            "sales": _count(item.sold_quantity, item.num_iid),
            "quantity": _count(item.num, item.num_iid),
            "pic_url": item.pic_url,
            "seller_nick": item.nick,
            "shop_id": shop_id,
            "detail_url": f"https://item.example.invalid/item.htm?id={item.num_iid}",
        }

    # -- item_get --------------------------------------------------------------------------------

    def _detail(self, platform: str, params: dict[str, str]) -> dict[str, Any]:
        raw = params.get("num_iid", "")
        if not raw.isascii() or not raw.isdigit():
            raise GatewayError("4003", f"num_iid must be an item id, got {raw!r}")
        found = self.sandbox.shops.find_item(int(raw))
        if found is None or not found[1].onsale or found[1].vanish or found[1].isv:
            raise GatewayError("2000", "商品没找到", "item-not-found", outcome="not_found")
        shop, item = found
        return {"item": self._record(platform, item, shop.nick)}

    def _record(self, platform: str, item: Item, shop_id: str) -> dict[str, Any]:
        number = item.num_iid % 3 == 0
        record: dict[str, Any] = {
            "num_iid": _id(item.num_iid),
            "title": item.title,
            "desc_short": "",
            "price": _price(item.price, number),
            "orginal_price": _price(item.price, number),
            "nick": item.nick,
            "num": _count(item.num, item.num_iid),
            "detail_url": f"https://item.example.invalid/item.htm?id={item.num_iid}",
            "pic_url": item.pic_url,
            "cid": item.cid,
            "created_time": format_time(item.created),
            "item_imgs": [{"url": url} for url in item.images],
            "props_list": {
                pair: f"{pair.split(':')[0]}:{pair.split(':')[1]}" for pair in item.props.split(";")
            },
            "seller_id": shop_id,
            "shop_id": shop_id,
        }
        if item.num_iid % 7 != 0:
            record["modified_time"] = format_time(item.modified)
        if item.skus:
            record["skus"] = {
                "sku": [
                    {
                        "sku_id": str(sku.sku_id) if sku.sku_id % 2 else sku.sku_id,
                        "price": _price(sku.price, sku.sku_id % 3 == 0),
                        "orginal_price": sku.price,
                        "properties": sku.properties,
                        "properties_name": sku.properties_name,
                        "quantity": str(sku.quantity) if sku.sku_id % 2 else sku.quantity,
                    }
                    for sku in item.skus
                ]
            }
        if platform == "1688":
            record["min_num"] = _count(1 + item.num_iid % 3, item.num_iid)
            fen = _fen(item.price)
            if fen > 0:
                record["priceRange"] = [
                    [start, format_fen(max(1, fen * share // 100))]
                    for start, share in ((1, 100), (10, 95), (100, 90))
                ]
        if item.hostile:
            record.update(HOSTILE_EXTRAS)
        return record


def _props_list(item: Item) -> dict[str, str]:
    """``{"pid:vid": "name:value"}`` for the item's properties."""
    names = {"20000": "品牌", "1627207": "颜色分类"}
    pairs = (pair.partition(":") for pair in item.props.split(";") if pair)
    return {f"{pid}:{vid}": f"{names.get(pid, pid)}:{vid}" for pid, _, vid in pairs}


def error_fields(error: GatewayError) -> dict[str, Any]:
    return {"error": error.error or "error", "reason": error.reason}

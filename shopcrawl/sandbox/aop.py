"""The 1688 AOP gateway over the same synthetic shop: ``/openapi/param2/1/com.alibaba.product/<api>/<key>``.

The same items TOP sees, in AOP's shapes (§7.1 of the protocol doc). Order of handling (GET or POST;
query and form params merged, the query string winning): app key (400 ``gw.AppKeyNotFound``) →
``_aop_signature`` present (400 ``gw.ParamMissing``) and right (400 ``gw.SignatureInvalid``) →
``_aop_timestamp`` within 600 s (400 ``gw.TimestampInvalid``) → known API (400 ``gw.APIUnsupported``) →
``access_token`` (``--session``, ``<--session>-shop-NNN`` for an extra shop, or a live token the OAuth
endpoints issued; else 401 ``"401"``, the same body for an issued token past its expiry, which is
recorded as outcome ``session_expired``; the token selects the shop, see ``shops``) → quota
(``--quota-ban-seconds``: 429 ``gw.NoUsageLeftError``) → QPS limiter (429 ``gw.QpsOverLimit``) → fault
draw (5xx / timeout; an ``isp`` fault answers HTTP 500) → business params and the answer → truncated /
garbled faults.

Derived per item, deterministically from its ``num_iid`` (choices; §2.6 gives no numbers):

- ``productID`` = ``num_iid``; ``modifyTime`` / ``createTime`` as ``yyyyMMddHHmmssSSS+0800``; images as
  relative ``img/ibank/...`` paths.
- ``saleInfo.priceRanges``: 2–3 tiers from ``minOrderQuantity`` (1, 2, 3, 5 or 10) up; the first tier's
  price is the item's (lowest) price, later tiers 5–15 % lower rounded to 0.10 元; prices are JSON
  numbers (``19.9``, ``258``) written from exact decimals.
- ``quoteType`` 1 (priced per SKU: each SKU has its ``price``) for about half the items with SKUs,
  else 0 (SKUs carry no price; the tiers price them).
- ``specId``: 32 hex digits derived from the ``sku_id``; SKU ``attributes`` from its properties.
- A listed item the detail call no longer finds (``--vanish-items``) answers HTTP 200
  ``{"success": false, "errorCode": "PRODUCT_NOT_EXIST", ...}``; an ``--isv-items`` item answers
  ``PRODUCT_DATA_ERROR`` the same way.
- ``pageSize`` above 20 is served as 20; ``orderByCondition`` must be ``ID`` (the only order served).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shopcrawl.platforms.aop import protocol as aop

from .shop import Shop
from .synth import HOSTILE_EXTRAS, Item

if TYPE_CHECKING:
    from .app import Sandbox

AOP_PATH = "/openapi/param2/1/com.alibaba.product/{api}/{app_key}"
PAGE_SIZE_MAX = 20
_PRICE_RE = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")
_DECIMAL_MARK = "\u0000DEC"
_DECIMAL_JSON = re.compile(r'"\\u0000DEC([0-9.]+)"')
_JSON = "application/json"


class AopError(Exception):
    def __init__(self, status: int, code: str, message: str, outcome: str, ban_until: float | None = None):
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message = status, code, message
        self.outcome, self.ban_until = outcome, ban_until


def dumps(value: Any) -> bytes:
    """JSON whose Decimals are written as numbers, digit for digit (no float on the way)."""
    text = json.dumps(
        value,
        ensure_ascii=False,
        separators=(",", ":"),
        default=lambda d: _DECIMAL_MARK + str(d) if isinstance(d, Decimal) else str(d),
    )
    return _DECIMAL_JSON.sub(r"\1", text).encode("utf-8")


def _price_number(price: str) -> Decimal | str:
    """A valid price as an exact decimal number (``"19.90"`` -> ``19.9``); an invalid one as sent."""
    if not _PRICE_RE.match(price):
        return price
    value = Decimal(price)
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _fen_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _to_fen(price: str) -> int | None:
    if not _PRICE_RE.match(price):
        return None
    yuan, _, cents = price.partition(".")
    return int(yuan) * 100 + int(cents.ljust(2, "0"))


def format_time(epoch: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch + 8 * 3600)) + "000+0800"


def spec_id(sku_id: int) -> str:
    return hashlib.md5(f"spec:{sku_id}".encode()).hexdigest()


def sale_terms(item: Item) -> tuple[int, int, list[tuple[int, str]]]:
    """(quoteType, minOrderQuantity, [(startQuantity, price string)]) for ``item``."""
    rng = random.Random(f"aop:{item.num_iid}")
    quote_type = 1 if item.skus and rng.random() < 0.5 else 0
    moq = rng.choice((1, 2, 3, 5, 10))
    count = rng.choice((2, 3))
    base = _to_fen(item.price)
    tiers = [(moq, item.price)]
    start, fen = moq, base
    for _ in range(count - 1):
        start = start * rng.choice((2, 5, 10))
        if fen is not None:
            fen = max(10, min(fen - 10, round(fen * rng.uniform(0.85, 0.95) / 10) * 10))
        tiers.append((start, item.price if fen is None else _fen_text(max(fen, 1))))
    return quote_type, moq, tiers


def _attributes(properties_name: str) -> list[dict[str, Any]]:
    out = []
    for part in properties_name.split(";"):
        pieces = part.split(":", 3)
        if len(pieces) == 4:
            pid, _, name, value = pieces
            out.append(
                {
                    "attributeID": int(pid) if pid.isdigit() else pid,
                    "attributeName": name,
                    "attributeValue": value,
                }
            )
    return out


def listing_row(item: Item) -> dict[str, Any]:
    prices = sorted({_to_fen(s.price) or 0 for s in item.skus}) or [_to_fen(item.price) or 0]
    low, high = _fen_text(prices[0]), _fen_text(prices[-1])
    return {
        "productID": item.num_iid,
        "subject": item.title,
        "status": "published" if item.onsale else "expired",
        "modifyTime": format_time(item.modified),
        "createTime": format_time(item.created),
        "referencePrice": low if low == high else f"{low}~{high}",
        "saleInfo": {"amountOnSale": item.num},
    }


def product_info(item: Item) -> dict[str, Any]:
    quote_type, moq, tiers = sale_terms(item)
    skus = []
    for sku in item.skus:
        record: dict[str, Any] = {
            "skuId": sku.sku_id,
            "specId": spec_id(sku.sku_id),
            "amountOnSale": sku.quantity,
            "cargoNumber": sku.outer_id,
            "attributes": _attributes(sku.properties_name),
        }
        if quote_type == 1:
            record["price"] = _price_number(sku.price)
        skus.append(record)
    info: dict[str, Any] = {
        "productID": item.num_iid,
        "productType": "wholesale",
        "categoryID": item.cid,
        "subject": item.title,
        "status": "published" if item.onsale else "expired",
        "modifyTime": format_time(item.modified),
        "createTime": format_time(item.created),
        "image": {
            "images": [
                f"img/ibank/{item.num_iid % 1000:03d}/{item.num_iid}-{k}.jpg" for k in range(len(item.images))
            ]
        },
        "saleInfo": {
            "amountOnSale": item.num,
            "minOrderQuantity": moq,
            "quoteType": quote_type,
            "unit": "件",
            "priceRanges": [{"startQuantity": s, "price": _price_number(p)} for s, p in tiers],
        },
    }
    if skus:
        info["skuInfos"] = skus
    if item.hostile:
        info.update(HOSTILE_EXTRAS)
    return info


class AopApi:
    """The AOP handlers, over the state of one :class:`~shopcrawl.sandbox.app.Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._by_id: dict[str, tuple[int, list[Item]]] = {}  # seller -> (shop version, on-sale items)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sandbox, config = self.sandbox, self.sandbox.config
        now = time.time()
        api, app_key = request.match_info["api"], request.match_info["app_key"]
        params = {k: v for k, v in request.query.items() if v}
        if request.body_exists:
            for key, value in (await request.post()).items():
                if isinstance(value, str) and value:
                    params.setdefault(key, value)
        request_id = sandbox._request_id()
        fault: str | None = None
        seller: str | None = None
        try:
            self._check(api, app_key, params, now)
            shop = sandbox.token_shop(params["access_token"])
            seller = shop.nick
            if config.quota_ban_seconds > 0:
                raise AopError(429, "gw.NoUsageLeftError", "SLA bill has no usage left", "quota")
            refused = sandbox.limiter.admit((app_key, api), now)
            if refused is not None:
                until, started = refused
                if started:
                    sandbox.stats.add_ban(now, until)
                raise AopError(429, aop.QPS_OVER_LIMIT, "qps over limit", "ban", until)
            fault = sandbox.faults.draw()
            failed = await sandbox.transport_fault(fault, now, api, seller)
            if failed is not None:
                return failed
            if fault == "isp":
                raise AopError(500, "isp.remote-service-error", "remote service error", "isp")
            body = self._listing(shop, params) if api == aop.LISTING_API else self._detail(shop, params)
            status, outcome = 200, "ok" if b'"success":true' in body[:64] else "business"
        except AopError as error:
            answer = {"error_code": error.code, "error_message": error.message, "request_id": request_id}
            if error.code == aop.UNAUTHORISED:
                answer["exception"] = error.message
            body = dumps(answer)
            status, outcome = error.status, error.outcome
            sandbox.stats.record(now, api, outcome, error.ban_until, seller)
            return web.Response(status=status, body=body, content_type=_JSON, charset="utf-8")
        body, outcome = sandbox.body_fault(fault, body, outcome)
        sandbox.stats.record(now, api, outcome, None, seller)
        return web.Response(status=status, body=body, content_type=_JSON, charset="utf-8")

    def _check(self, api: str, app_key: str, params: dict[str, str], now: float) -> None:
        creds = self.sandbox.creds
        if app_key != creds.app_key:
            raise AopError(400, "gw.AppKeyNotFound", f"AppKey {app_key} not found", "auth")
        signature = params.get("_aop_signature")
        if not signature:
            raise AopError(400, "gw.ParamMissing", "_aop_signature is missing", "auth")
        path = aop.url_path(api, app_key)
        if signature != aop.sign(path, params, creds.app_secret):
            raise AopError(400, "gw.SignatureInvalid", "Request signature is invalid", "auth")
        stamp = params.get("_aop_timestamp", "")
        if not (stamp.isascii() and stamp.isdigit()) or abs(int(stamp) / 1000 - now) > aop.MAX_SKEW_SECONDS:
            raise AopError(400, "gw.TimestampInvalid", f"_aop_timestamp {stamp!r} is invalid", "auth")
        if api not in (aop.LISTING_API, aop.DETAIL_API):
            raise AopError(400, "gw.APIUnsupported", f"API {api} is not supported", "auth")
        token = params.get("access_token", "")
        if self.sandbox.shops.seller_of_session(token) is None:
            state = self.sandbox.tokens.api_state("1688", token, now)
            outcome = "session_expired" if state == "expired" else "auth"
            if state != "live":
                raise AopError(401, aop.UNAUTHORISED, "Request need user authorized", outcome)

    def _onsale_by_id(self, shop: Shop) -> list[Item]:
        version, items = self._by_id.get(shop.nick, (-1, []))
        if version != shop.version:
            items = sorted((i for i in shop.all_items() if i.onsale), key=lambda i: i.num_iid)
            self._by_id[shop.nick] = shop.version, items
        return items

    def _listing(self, shop: Shop, params: dict[str, str]) -> bytes:
        page_no, page_size = _positive(params, "pageNo"), _positive(params, "pageSize")
        order = params.get("orderByCondition", "ID")
        if order != "ID":
            raise AopError(400, "gw.ParamInvalid", f"orderByCondition {order!r}: only ID is served", "params")
        status_list = params.get("statusList", '["published"]')
        if "published" not in status_list:
            raise AopError(400, "gw.ParamInvalid", "statusList must include published", "params")
        items = self._onsale_by_id(shop)
        if params.get("orderByType", "ASC").upper() == "DESC":
            items = items[::-1]
        size = min(page_size, PAGE_SIZE_MAX)
        page = items[(page_no - 1) * size : page_no * size]
        return dumps({"success": True, "totalRecords": len(items), "result": [listing_row(i) for i in page]})

    def _detail(self, shop: Shop, params: dict[str, str]) -> bytes:
        product_id = _positive(params, "productID")
        if params.get("webSite") not in ("1688", "alibaba"):
            raise AopError(400, "gw.ParamMissing", "webSite is missing or invalid", "params")
        item = shop.get(product_id)
        if item is None or item.vanish:
            return dumps(
                {
                    "success": False,
                    "errorCode": "PRODUCT_NOT_EXIST",
                    "errorMsg": f"product {product_id} does not exist",
                }
            )
        if item.isv:
            return dumps(
                {
                    "success": False,
                    "errorCode": "PRODUCT_DATA_ERROR",
                    "errorMsg": f"product {product_id} data error",
                }
            )
        return dumps({"success": True, "productInfo": product_info(item)})


def _positive(params: dict[str, str], name: str) -> int:
    value = params.get(name, "")
    if not value:
        raise AopError(400, "gw.ParamMissing", f"{name} is missing", "params")
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise AopError(400, "gw.ParamInvalid", f"{name} must be a positive integer", "params")
    return int(value)

"""``item_search_shop`` / ``item_get`` gateways (onebound style): envelope, loose types, error classes.

Pure functions, no Scrapy imports. Protocol reference: shared api-protocols.md §3, and §7.2 for the
shapes shopcrawl assumes where the vendors' docs are silent:

- ``GET <base>/<platform>/<api>/?key=…&secret=…&<params>``; every answer is HTTP 200 JSON with a
  string ``error_code`` (``"0000"`` ok); the payload (``items`` / ``item``) sits beside it.
- Any number may arrive as a string or a number, any boolean as ``"true"``/``true``/``1``; a price
  that arrives as a JSON number is decoded exactly (``parse_float=Decimal``), never through a float.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from shopcrawl.platforms.base import ApiError, EnvelopeError, ErrorClass

PRODUCTION_URL = "https://api-gw.onebound.cn"
LISTING_API = "item_search_shop"
DETAIL_API = "item_get"
SOURCE = "gateway"
OK = "0000"
NO_RESULT = "2000"
# The depth cap §7.2 assumes: one query serves at most this many pages, whatever page_count says.
MAX_PAGES = 50
SECRET_PARAMS = frozenset({"key", "secret"})

_RETRY_CODES = frozenset({"4000", "4001", "4002"})
FATAL_HINTS: dict[str, str] = {
    "4003": "the gateway refused a parameter; check the shop id (-a seller_id=) and -a platform=",
    "4004": "the gateway knows no such account; check SHOPCRAWL_APP_KEY (the gateway key)",
    "4005": "the gateway refused the key or secret; check SHOPCRAWL_APP_KEY and SHOPCRAWL_APP_SECRET",
    "4006": "the gateway has stopped this API for the account; re-enable it with the gateway vendor",
    "4007": "the gateway account's quota is spent; top it up or wait for the next quota day",
}


def loads(body: bytes) -> Any:
    """Decode JSON exactly: a JSON number with a fraction becomes a :class:`Decimal`."""
    return json.loads(body, parse_float=Decimal)


def to_int(value: Any, name: str) -> int:
    """An integer from ``12``, ``"12"`` or ``Decimal("12")``; raises ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} is not an integer: {value!r:.40}")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise ValueError(f"{name} is not an integer: {value!r:.40}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.lstrip("-").isdigit():
            return int(text)
    raise ValueError(f"{name} is not an integer: {value!r:.40}")


def to_bool(value: Any, name: str) -> bool:
    """``"true"``/``true``/``1``/``"1"`` and their opposites; raises ``ValueError`` for anything else."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise ValueError(f"{name} is not a boolean: {value!r:.40}")


def to_money(value: Any) -> str | None:
    """The price as exact text: a string as sent, a JSON number (Decimal or int) as its digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        try:
            return format(value, "f")
        except (InvalidOperation, ValueError):
            return None
    return None


def error_code(body: Mapping[str, Any]) -> str:
    """The envelope's ``error_code`` as a 4-digit string (``0`` or ``"0"`` means ``"0000"``)."""
    raw = body.get("error_code")
    if raw is None or isinstance(raw, bool):
        raise EnvelopeError(f"no error_code in the gateway's answer (keys: {', '.join(sorted(body))[:120]})")
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()):
        raise EnvelopeError(f"error_code is not a number: {raw!r:.40}")
    return text.zfill(4)


def unwrap(api: str, body: Any) -> tuple[dict[str, Any] | None, ApiError | None]:
    """(payload, None) or (None, error). A listing's ``"2000"`` (past the end or the depth cap) is an
    empty page; an ``item_get``'s ``"2000"`` is an error about that item."""
    if not isinstance(body, dict):
        raise EnvelopeError(f"expected a JSON object, got {type(body).__name__}")
    code = error_code(body)
    if code == OK:
        return body, None
    if code == NO_RESULT and api == LISTING_API:
        return {"items": {"item": []}, "no_result": True}, None
    return None, ApiError(
        code=code,
        msg=str(body.get("reason") or body.get("error") or ""),
        sub_code=str(body.get("error") or ""),
        request_id=str(body.get("request_id") or ""),
        source=SOURCE,
    )


def classify(error: ApiError) -> ErrorClass:
    if error.code == NO_RESULT:
        return ErrorClass.RECORD  # item_get: the item is gone since it was listed
    if error.code in _RETRY_CODES:
        return ErrorClass.RETRY
    return ErrorClass.FATAL  # 4003-4007 and any code §3.4 does not list: never retried, never guessed


def fatal_hint(error: ApiError) -> str:
    return FATAL_HINTS.get(
        error.code, "the gateway answered an error code shopcrawl does not know; see its reason text"
    )


def listing_body(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    items = payload.get("items")
    if not isinstance(items, dict):
        raise EnvelopeError(f"items is not an object: {items!r:.80}")
    return items


def listing_rows(items: Mapping[str, Any]) -> list[Any]:
    rows = items.get("item", [])
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise EnvelopeError(f"items.item is not a list: {rows!r:.80}")
    return rows


def detail_record(payload: Mapping[str, Any]) -> dict[str, Any]:
    item = payload.get("item")
    if not isinstance(item, dict):
        raise EnvelopeError(f"item is not an object: {item!r:.80}")
    return item


def plain(value: Any) -> Any:
    """``value`` with every :class:`Decimal` replaced by its exact text: JSON-safe for queues, stores
    and exports, and still exact (``28.50`` stays ``"28.50"``)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value

"""TOP item records -> :class:`ShopItem`. Pure; raises :class:`InvalidItem` naming the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shopcrawl.items import ShopItem, Sku
from shopcrawl.platforms import fields
from shopcrawl.platforms.base import EnvelopeError, InvalidItem
from shopcrawl.platforms.top import protocol as top

__all__ = ["InvalidItem", "item_from_raw", "parse_properties_name"]

_DIGITS = re.compile(r"-?[0-9]+")


def _int(raw: Mapping[str, Any], field: str, *, required: bool = True, prefix: str = "") -> int | None:
    value = raw.get(field)
    if type(value) is int:  # JSON's integers, most of them: no text to check
        if value < 0:
            raise InvalidItem(prefix + field, f"negative: {value}")
        return value
    if value is None or value == "":
        if required:
            raise InvalidItem(prefix + field, "missing")
        return None
    if isinstance(value, bool | float):
        raise InvalidItem(prefix + field, f"not an integer: {value!r}")
    text = str(value).strip()
    if not _DIGITS.fullmatch(text):  # int() would take "1_000" and non-ASCII digits
        raise InvalidItem(prefix + field, f"not an integer: {value!r}")
    number = int(text)
    if number < 0:
        raise InvalidItem(prefix + field, f"negative: {number}")
    return number


def _price(raw: Mapping[str, Any], field: str, prefix: str = "") -> tuple[str, int]:
    value = raw.get(field)
    if value is None or value == "":
        raise InvalidItem(prefix + field, "missing")
    if not isinstance(value, str):
        raise InvalidItem(prefix + field, f"not a price string: {value!r}")
    return fields.fen(value, prefix + field)


def _time(raw: Mapping[str, Any], field: str, *, required: bool = True) -> datetime | None:
    return fields.timestamp(raw, field, top.parse_time, required=required, shape="'yyyy-MM-dd HH:mm:ss'")


def _list(raw: Mapping[str, Any], field: str, item_name: str) -> list[Any]:
    """A wrapped or plain list field; absent is empty, any other shape an InvalidItem."""
    try:
        return top.unwrap_list(raw, field, item_name)
    except EnvelopeError:
        raise InvalidItem(field, f"not a list: {raw.get(field)!r:.80}") from None


def _str(raw: Mapping[str, Any], field: str) -> str:
    value = raw.get(field)
    return "" if value is None else str(value)


# Fields item_from_raw maps to typed fields; the rest of a record goes to ShopItem.extras.
_MAPPED = frozenset(
    {"num_iid", "title", "price", "num", "sold_quantity", "modified", "approve_status", "list_time", "nick"}
    | {"cid", "outer_id", "pic_url", "item_imgs", "desc", "skus"}
)


def parse_properties_name(text: str) -> dict[str, str]:
    """``pid:vid:颜色分类:黑色;pid:vid:尺码:XL`` -> ``{"颜色分类": "黑色", "尺码": "XL"}``.

    TOP escapes ``:`` in names as ``#cln#`` and ``;`` as ``#scln#`` (§1.8)."""
    props: dict[str, str] = {}
    for part in text.split(";"):
        pieces = part.split(":")
        if len(pieces) >= 4:
            name, value = (
                p.replace("#cln#", ":").replace("#scln#", ";") for p in (pieces[2], ":".join(pieces[3:]))
            )
            props[name] = value
    return props


def _sku(raw: Any, index: int) -> Sku:
    prefix = f"skus[{index}]."
    if not isinstance(raw, Mapping):
        raise InvalidItem(f"skus[{index}]", "not an object")
    sku_id = _int(raw, "sku_id", prefix=prefix)
    quantity = _int(raw, "quantity", prefix=prefix)
    price, fen = _price(raw, "price", prefix)
    assert sku_id is not None and quantity is not None
    return Sku(
        sku_id=sku_id,
        properties_name=_str(raw, "properties_name"),
        props=parse_properties_name(_str(raw, "properties_name")),
        price=price,
        price_fen=fen,
        quantity=quantity,
        properties=_str(raw, "properties"),
        outer_id=_str(raw, "outer_id"),
    )


def item_from_raw(
    raw: Mapping[str, Any], listed: Mapping[str, Any], *, platform: str, seller_id: str, run_id: str
) -> ShopItem:
    """Build the typed item; listing fields fill what the detail record lacks."""
    merged = {**listed, **{k: v for k, v in raw.items() if v is not None}}
    num_iid = _int(merged, "num_iid")
    num = _int(merged, "num")
    price, fen = _price(merged, "price")
    modified = _time(merged, "modified")
    assert num_iid is not None and num is not None and modified is not None
    skus_raw = _list(merged, "skus", "sku")
    imgs = _list(merged, "item_imgs", "item_img")
    title = fields.title(merged, "title")
    return ShopItem(
        platform=platform,
        seller_id=seller_id,
        num_iid=num_iid,
        title=title,
        price=price,
        price_fen=fen,
        num=num,
        sold_quantity=_int(merged, "sold_quantity", required=False),
        modified=modified,
        approve_status=_str(merged, "approve_status"),
        list_time=_time(merged, "list_time", required=False),
        nick=_str(merged, "nick"),
        cid=_int(merged, "cid", required=False),
        outer_id=_str(merged, "outer_id"),
        pic_url=_str(merged, "pic_url"),
        item_imgs=[str(img.get("url", "")) for img in imgs if isinstance(img, Mapping)],
        desc=merged.get("desc") if isinstance(merged.get("desc"), str) else None,
        skus=[_sku(sku, i) for i, sku in enumerate(skus_raw)],
        run_id=run_id,
        extras={k: v for k, v in raw.items() if k not in _MAPPED},
    )

"""Gateway ``item_get`` records -> :class:`ShopItem`. Pure; raises :class:`InvalidItem` naming the field.

Types drift (§7.2): ids and counts may be strings or numbers, prices strings or exact JSON numbers
(decoded as :class:`~decimal.Decimal`). ``modified`` is the record's ``modified_time`` (GMT+8
``yyyy-MM-dd HH:mm:ss``) when the gateway sends one; without it, the time the listing page that first
listed the item was processed (``listed_at``), and ``extras["modified_source"]`` says which was used.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shopcrawl.items import PriceTier, ShopItem, Sku
from shopcrawl.platforms import fields
from shopcrawl.platforms.base import InvalidItem
from shopcrawl.platforms.gateway import protocol as gw
from shopcrawl.platforms.top import protocol as top
from shopcrawl.platforms.top.items import parse_properties_name

LISTED_AT = "listed_at"  # the listing field holding when the item was listed (ISO 8601, UTC)

# Fields mapped to typed fields; the rest of a record goes to ShopItem.extras, as sent.
_MAPPED = frozenset(
    {"num_iid", "title", "price", "num", "pic_url", "item_imgs", "skus", "modified_time", "nick"}
    | {"cid", "priceRange", "min_num", "desc"}
)


def _int(raw: Mapping[str, Any], field: str, *, required: bool = True, prefix: str = "") -> int | None:
    value = raw.get(field)
    if value is None or value == "":
        if required:
            raise InvalidItem(prefix + field, "missing")
        return None
    try:
        number = gw.to_int(value, prefix + field)
    except ValueError:
        raise InvalidItem(prefix + field, f"not an integer: {value!r:.40}") from None
    if number < 0:
        raise InvalidItem(prefix + field, f"negative: {number}")
    return number


def _price(value: Any, field: str) -> tuple[str, int]:
    if value is None or value == "":
        raise InvalidItem(field, "missing")
    text = gw.to_money(value)
    if text is None:
        raise InvalidItem(field, f"not a price: {value!r:.40}")
    return fields.fen(text, field)


def _modified(raw: Mapping[str, Any], listed: Mapping[str, Any]) -> tuple[datetime, str]:
    value = raw.get("modified_time")
    if value not in (None, ""):
        try:
            return top.parse_time(str(value).strip()), "modified_time"
        except ValueError:
            raise InvalidItem("modified_time", f"not a 'yyyy-MM-dd HH:mm:ss' time: {value!r:.40}") from None
    at = listed.get(LISTED_AT)
    try:
        moment = datetime.fromisoformat(str(at))
    except ValueError:
        raise InvalidItem("modified_time", "missing, and no listing time to stand in for it") from None
    if moment.tzinfo is None:
        raise InvalidItem("modified_time", "missing, and the listing time has no time zone")
    return moment, LISTED_AT


def _list(raw: Mapping[str, Any], field: str, inner: str) -> list[Any]:
    value = raw.get(field)
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        value = value.get(inner, [])
    if not isinstance(value, list):
        raise InvalidItem(field, f"not a list: {value!r:.80}")
    return value


def _sku(raw: Any, index: int) -> Sku:
    prefix = f"skus[{index}]."
    if not isinstance(raw, Mapping):
        raise InvalidItem(f"skus[{index}]", "not an object")
    sku_id = _int(raw, "sku_id", prefix=prefix)
    quantity = _int(raw, "quantity", prefix=prefix)
    price, fen = _price(raw.get("price"), prefix + "price")
    assert sku_id is not None and quantity is not None
    name = "" if raw.get("properties_name") is None else str(raw["properties_name"])
    return Sku(
        sku_id=sku_id,
        properties_name=name,
        props=parse_properties_name(name),
        price=price,
        price_fen=fen,
        quantity=quantity,
        properties="" if raw.get("properties") is None else str(raw["properties"]),
    )


def _tiers(raw: Mapping[str, Any]) -> list[PriceTier]:
    """1688's ``priceRange``: ``[[startQuantity, "price"], ...]``, ascending start quantities."""
    tiers: list[PriceTier] = []
    for index, tier in enumerate(_list(raw, "priceRange", "")):
        field = f"priceRange[{index}]"
        if not isinstance(tier, list) or len(tier) != 2:
            raise InvalidItem(field, f"not a [startQuantity, price] pair: {tier!r:.60}")
        start = _int({"startQuantity": tier[0]}, "startQuantity", prefix=field + ".")
        price, fen = _price(tier[1], field + ".price")
        assert start is not None
        if tiers and start <= tiers[-1].start_quantity:
            raise InvalidItem(field, "start quantities are not ascending")
        tiers.append(PriceTier(start_quantity=start, price=price, price_fen=fen))
    return tiers


def item_from_raw(
    raw: Mapping[str, Any], listed: Mapping[str, Any], *, platform: str, seller_id: str, run_id: str
) -> ShopItem:
    """The typed item of one ``item_get`` record; ``listed`` holds the listing row's kept fields."""
    num_iid = _int(raw, "num_iid")
    num = _int(raw, "num")
    price, fen = _price(raw.get("price"), "price")
    modified, source = _modified(raw, listed)
    assert num_iid is not None and num is not None
    title = fields.title(raw, "title")
    images = _list(raw, "item_imgs", "item_img")
    extras = {k: v for k, v in raw.items() if k not in _MAPPED}
    extras["modified_source"] = source
    return ShopItem(
        platform=platform,
        seller_id=seller_id,
        num_iid=num_iid,
        title=title,
        price=price,
        price_fen=fen,
        num=num,
        sold_quantity=_int(listed, "sales", required=False),
        modified=modified,
        approve_status="onsale",  # item_search_shop lists on-sale items only
        nick="" if raw.get("nick") is None else str(raw["nick"]),
        cid=_int(raw, "cid", required=False),
        pic_url="" if raw.get("pic_url") is None else str(raw["pic_url"]),
        item_imgs=[str(img.get("url", "")) for img in images if isinstance(img, Mapping)],
        desc=raw["desc"] if isinstance(raw.get("desc"), str) else None,
        skus=[_sku(sku, i) for i, sku in enumerate(_list(raw, "skus", "sku"))],
        run_id=run_id,
        extras=extras,
        price_tiers=_tiers(raw) if platform == "1688" else [],
        min_order_quantity=_int(raw, "min_num", required=False) if platform == "1688" else None,
    )

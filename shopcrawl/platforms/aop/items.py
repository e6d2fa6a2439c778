"""1688 ``productInfo`` records -> :class:`ShopItem`. Pure; raises :class:`InvalidItem` naming the field.

Prices arrive as JSON numbers, decoded as :class:`~decimal.Decimal` (``protocol.loads``); a price
becomes its exact decimal string and integer fen (``19.9`` -> ``"19.9"``, 1990), never a float.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from shopcrawl.items import PriceTier, ShopItem, Sku
from shopcrawl.platforms import fields
from shopcrawl.platforms.aop import protocol as aop
from shopcrawl.platforms.base import InvalidItem

__all__ = ["item_from_raw", "plain"]

_DIGITS = re.compile(r"[0-9]+")

# productInfo fields item_from_raw maps to typed fields; the rest goes to ShopItem.extras.
_MAPPED = frozenset(
    {"productID", "subject", "categoryID", "status", "modifyTime", "createTime", "image", "saleInfo"}
    | {"skuInfos"}
)
_SALE_MAPPED = frozenset({"amountOnSale", "minOrderQuantity", "priceRanges"})


def plain(value: Any) -> Any:
    """``value`` with every Decimal as its exact string: what extras and reject payloads keep."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _int(raw: Mapping[str, Any], field: str, *, required: bool = True, prefix: str = "") -> int | None:
    value = raw.get(field)
    if value is None or value == "":
        if required:
            raise InvalidItem(prefix + field, "missing")
        return None
    if isinstance(value, bool | float | Decimal):
        raise InvalidItem(prefix + field, f"not an integer: {plain(value)!r}")
    text = str(value).strip()
    if not _DIGITS.fullmatch(text):
        raise InvalidItem(prefix + field, f"not a non-negative integer: {value!r}")
    return int(text)


def _price(value: Any, field: str) -> tuple[str, int]:
    """An exact price from a JSON number (int or Decimal) or a numeric string."""
    if value is None or value == "":
        raise InvalidItem(field, "missing")
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise InvalidItem(field, f"not a price: {value!r:.40}")
    return fields.fen(str(value), field)


def _time(raw: Mapping[str, Any], field: str, *, required: bool = True) -> datetime | None:
    return fields.timestamp(raw, field, aop.parse_time, required=required)


def _object(raw: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = raw.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidItem(field, f"not an object: {plain(value)!r:.80}")
    return value


def _array(raw: Mapping[str, Any], field: str, prefix: str = "") -> list[Any]:
    value = raw.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidItem(prefix + field, f"not a list: {plain(value)!r:.80}")
    return value


def _tiers(sale: Mapping[str, Any]) -> list[PriceTier]:
    tiers = []
    for index, raw in enumerate(_array(sale, "priceRanges", "saleInfo.")):
        prefix = f"saleInfo.priceRanges[{index}]."
        if not isinstance(raw, Mapping):
            raise InvalidItem(prefix[:-1], "not an object")
        start = _int(raw, "startQuantity", prefix=prefix)
        price, fen = _price(raw.get("price"), prefix + "price")
        assert start is not None
        tiers.append(PriceTier(start_quantity=start, price=price, price_fen=fen))
    tiers.sort(key=lambda tier: tier.start_quantity)
    starts = [tier.start_quantity for tier in tiers]
    if len(set(starts)) != len(starts):
        raise InvalidItem("saleInfo.priceRanges", f"duplicate startQuantity in {starts}")
    return tiers


def _props(attributes: list[Any], prefix: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for index, attribute in enumerate(attributes):
        if not isinstance(attribute, Mapping):
            raise InvalidItem(f"{prefix}attributes[{index}]", "not an object")
        name = attribute.get("attributeName") or attribute.get("attributeID")
        value = attribute.get("attributeValue")
        if name is not None and value is not None:
            props[str(name)] = str(plain(value))
    return props


def _sku(raw: Any, index: int, first_tier: PriceTier | None) -> Sku:
    prefix = f"skuInfos[{index}]."
    if not isinstance(raw, Mapping):
        raise InvalidItem(f"skuInfos[{index}]", "not an object")
    sku_id = _int(raw, "skuId", prefix=prefix)
    quantity = _int(raw, "amountOnSale", prefix=prefix)
    assert sku_id is not None and quantity is not None
    if raw.get("price") not in (None, ""):
        price, fen = _price(raw.get("price"), prefix + "price")
    elif first_tier is not None:  # quoteType 0: priced by quantity tier, not per SKU
        price, fen = first_tier.price, first_tier.price_fen
    else:
        raise InvalidItem(prefix + "price", "missing, and no saleInfo.priceRanges to price it by")
    spec = raw.get("specId")
    return Sku(
        sku_id=sku_id,
        properties_name="",  # AOP attributes carry no value ids to build TOP's pid:vid:name:value from
        price=price,
        price_fen=fen,
        quantity=quantity,
        outer_id="" if raw.get("cargoNumber") is None else str(raw.get("cargoNumber")),
        props=_props(_array(raw, "attributes", prefix), prefix),
        spec_id="" if spec is None else str(spec),
    )


def item_from_raw(
    raw: Mapping[str, Any], listed: Mapping[str, Any], *, platform: str, seller_id: str, run_id: str
) -> ShopItem:
    """Build the typed item from ``productInfo``; listing fields fill what the detail record lacks."""
    merged = {**listed, **{k: v for k, v in raw.items() if v is not None}}
    num_iid = _int(merged, "productID")
    sale = _object(merged, "saleInfo")
    num = _int(sale, "amountOnSale", prefix="saleInfo.")
    modified = _time(merged, "modifyTime")
    assert num_iid is not None and num is not None and modified is not None
    title = fields.title(merged, "subject", plain)
    tiers = _tiers(sale)
    first_tier = tiers[0] if tiers else None
    skus = [_sku(sku, i, first_tier) for i, sku in enumerate(_array(merged, "skuInfos"))]
    if skus:
        lowest = min(skus, key=lambda sku: sku.price_fen)
        price, fen = lowest.price, lowest.price_fen
    elif first_tier is not None:
        price, fen = first_tier.price, first_tier.price_fen
    else:
        raise InvalidItem("saleInfo.priceRanges", "missing: an item without SKUs needs a price tier")
    extras = {k: v for k, v in raw.items() if k not in _MAPPED}
    sale_rest = {k: v for k, v in sale.items() if k not in _SALE_MAPPED}
    if sale_rest:  # quoteType, unit, ...: kept under their own object
        extras["saleInfo"] = sale_rest
    paths = _array(_object(merged, "image"), "images", "image.")
    images = [path for path in paths if isinstance(path, str)]
    return ShopItem(
        platform=platform,
        seller_id=seller_id,
        num_iid=num_iid,
        title=title,
        price=price,
        price_fen=fen,
        num=num,
        sold_quantity=None,  # AOP's product record has no sales count
        modified=modified,
        approve_status="" if merged.get("status") is None else str(merged.get("status")),
        list_time=_time(merged, "createTime", required=False),
        cid=_int(merged, "categoryID", required=False),
        pic_url=images[0] if images else "",
        item_imgs=images,
        skus=skus,
        run_id=run_id,
        extras=plain(extras),
        price_tiers=tiers,
        min_order_quantity=_int(sale, "minOrderQuantity", required=False, prefix="saleInfo."),
    )

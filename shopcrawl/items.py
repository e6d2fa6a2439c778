"""Typed items, read through ItemAdapter. Field names follow TOP's where TOP has them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Sku:
    sku_id: int
    properties_name: str
    price: str  # the source string, e.g. "25.80"
    price_fen: int  # exact integer fen
    quantity: int
    properties: str = ""
    outer_id: str = ""
    # properties_name as a map, e.g. {"颜色分类": "黑色", "尺码": "XL"}. Its keys are seller text:
    # stores that cannot take any key (MongoDB) escape them (see shopcrawl.stores.keys).
    props: dict[str, str] = field(default_factory=dict)
    spec_id: str = ""  # 1688's SKU spec id; empty on Taobao


@dataclass
class PriceTier:
    """A 1688 quantity price: from ``start_quantity`` pieces on, each costs ``price``."""

    start_quantity: int
    price: str  # exact decimal string in 元, e.g. "19.9"
    price_fen: int


@dataclass
class ShopItem:
    platform: str  # "taobao" or "1688"
    seller_id: str
    num_iid: int
    title: str
    price: str
    price_fen: int
    num: int  # stock
    sold_quantity: int | None
    modified: datetime  # timezone-aware
    approve_status: str = ""
    list_time: datetime | None = None
    nick: str = ""
    cid: int | None = None
    outer_id: str = ""
    pic_url: str = ""
    item_imgs: list[str] = field(default_factory=list)
    desc: str | None = None
    skus: list[Sku] = field(default_factory=list)
    run_id: str = ""
    # Fields of the detail record that have no typed field above, kept as sent: nothing is lost.
    extras: dict[str, object] = field(default_factory=dict)
    # 1688: quantity price tiers (ascending start_quantity) and the minimum order; empty on Taobao.
    price_tiers: list[PriceTier] = field(default_factory=list)
    min_order_quantity: int | None = None
    # Incremental crawls: when the detail was fetched (None: now, set by the store when it is written)
    # and the listing's fingerprint of the fields that say the item changed (the dialect's
    # ``listing_fingerprint``). Bookkeeping, not item data: equality ignores them.
    detail_at: datetime | None = field(default=None, compare=False)
    listing_fp: str = field(default="", compare=False)


@dataclass
class Reject:
    """A payload that did not become a stored item, with the specific reason."""

    platform: str
    seller_id: str
    reason: str  # e.g. "invalid/price: not a price ...", "detail/missing", "api/isv.item-not-found"
    payload: dict[str, object]
    num_iid: int | None = None
    run_id: str = ""


@dataclass
class RawRecord:
    """A detail record as the API sent it, with the listing fields it came with; the validation
    pipeline turns it into a :class:`ShopItem` or a :class:`Reject` through its dialect (``api``)."""

    platform: str
    seller_id: str
    run_id: str
    num_iid: int
    raw: dict[str, object]
    listed: dict[str, object] = field(default_factory=dict)
    api: str = "top"

"""Deterministic synthetic items for the sandbox shop.

Everything is drawn from ``random.Random`` instances seeded by the caller, so one seed and one item
count always give the same shop. Modelling choices (none of them matter to the protocol):

- ``num_iid``: distinct 12-digit numbers ``520000000000 + k``; ``sku_id``: distinct 13-digit numbers.
- ``modified``: spread over 183 days before :data:`ANCHOR` (2026-10-01 00:00:00 GMT+8); about one
  item in ten reuses the second of an earlier item, so windows with shared seconds exist.
  ``list_time <= modified``; ``delist_time = list_time + valid_thru`` days; ``created <= list_time``.
- About one item in ten has no SKUs; then ``num`` and ``price`` are item-level. Otherwise ``num`` is the
  sum of the SKU quantities and ``price`` the lowest SKU price.
- Invalid items (``--invalid-items``) rotate through :data:`INVALID_KINDS`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shopcrawl.money import format_fen
from shopcrawl.platforms.top import GMT8

ANCHOR = datetime(2026, 10, 1, tzinfo=GMT8)
ANCHOR_TS = int(ANCHOR.timestamp())
SPREAD_SECONDS = 183 * 86400
NUM_IID_BASE = 520_000_000_000
NUM_IID_SPAN = 479_999_999_999
SKU_ID_BASE = 4_000_000_000_000
MAX_FEN = 999_999  # 9999.99 元
MIN_SKU_FEN = 10  # 0.10 元, so a price can always go down

INVALID_KINDS = (
    "negative_price",
    "non_numeric_price",
    "html_title",
    "num_mismatch",
    "duplicate_sku_id",
    "empty_title",
)

_BRANDS = (
    "南极人",
    "恒源祥",
    "森马",
    "回力",
    "李宁",
    "九阳",
    "苏泊尔",
    "美的",
    "罗莱",
    "太平鸟",
    "骆驼",
    "小米",
)
_ADJECTIVES = (
    "2026新款",
    "加厚",
    "简约",
    "韩版",
    "纯棉",
    "宽松",
    "防水",
    "轻薄",
    "高腰",
    "复古",
    "ins风",
    "秋冬",
)
_PRODUCTS = (
    ("连衣裙", 50010850),
    ("短袖T恤", 50000436),
    ("连帽卫衣", 50008898),
    ("运动鞋", 50012043),
    ("保温杯", 50016348),
    ("电饭煲", 50002894),
    ("床上四件套", 50008296),
    ("羽绒服", 50008900),
    ("牛仔裤", 50010167),
    ("双肩包", 50012019),
    ("毛呢外套", 50011412),
    ("不粘锅", 50002809),
)
_SPECS = ("男女同款", "大码", "学生", "家用", "正品包邮", "送礼", "500ml", "加绒", "情侣款", "现货速发")
_COLOURS = (("28341", "黑色"), ("28320", "白色"), ("28326", "红色"), ("28338", "蓝色"), ("3232481", "灰色"))
_SIZES = (("28314", "XL"), ("28313", "L"), ("28315", "XXL"), ("28317", "M"), ("28316", "S"))


@dataclass(slots=True)
class Sku:
    sku_id: int
    properties: str
    properties_name: str
    price: str
    quantity: int
    outer_id: str
    modified: int


@dataclass(slots=True)
class Item:
    num_iid: int
    title: str
    nick: str
    cid: int
    seller_cids: str
    props: str
    pic_url: str
    num: int
    price: str
    list_time: int
    delist_time: int
    modified: int
    created: int
    sold_quantity: int
    outer_id: str
    valid_thru: int
    has_discount: bool
    has_showcase: bool
    postage_id: int
    skus: list[Sku] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    onsale: bool = True
    invalid: str = ""  # one of INVALID_KINDS, or ""
    isv: bool = False
    vanish: bool = False  # listed, but deleted before any detail call sees it
    hostile: bool = False  # detail record carries HOSTILE_EXTRAS; SKU property names are operator-like


def _price(rng: random.Random) -> int:
    """A price in fen, log-spread between 0.01 and 9999.99 元."""
    return max(1, min(MAX_FEN, int(10 ** rng.uniform(2.0, 5.6)) // 10 * 10 + rng.choice((0, 0, 0, 9, 90))))


def new_sku_id(rng: random.Random, used: set[int]) -> int:
    while True:
        candidate = SKU_ID_BASE + rng.randrange(1_000_000_000_000)
        if candidate not in used:
            used.add(candidate)
            return candidate


# (properties, properties_name, outer_id) of each colour and size: one copy of each text, shared by
# every SKU that has the combination (a quarter of an item's memory otherwise, with many shops).
_SKU_TEXTS = [
    (
        f"1627207:{cvid};20509:{svid}",
        f"1627207:{cvid}:颜色分类:{cname};20509:{svid}:尺码:{sname}",
        f"{cname}-{sname}",
    )
    for cvid, cname in _COLOURS
    for svid, sname in _SIZES
]


def make_skus(rng: random.Random, count: int, base_fen: int, used: set[int], modified: int) -> list[Sku]:
    skus = []
    for properties, properties_name, outer_id in rng.sample(_SKU_TEXTS, count):
        fen = max(MIN_SKU_FEN, min(MAX_FEN, base_fen + rng.choice((0, 0, 100, 500, 1000, -100))))
        skus.append(
            Sku(
                sku_id=new_sku_id(rng, used),
                properties=properties,
                properties_name=properties_name,
                price=format_fen(fen),
                quantity=rng.choice((0, rng.randrange(1, 50), rng.randrange(1, 500))),
                outer_id=outer_id,
                modified=modified,
            )
        )
    return skus


def recompute_totals(item: Item) -> None:
    """``num`` = sum of SKU quantities, ``price`` = lowest SKU price (no-op without SKUs)."""
    if item.skus:
        item.num = sum(s.quantity for s in item.skus)
        item.price = format_fen(min(_fen(s.price) for s in item.skus))


def _fen(price: str) -> int:
    yuan, _, cents = price.partition(".")
    return int(yuan) * 100 + int(cents.ljust(2, "0"))


def make_item(
    rng: random.Random, num_iid: int, *, nick: str, max_skus: int, sku_ids: set[int], modified: int
) -> Item:
    product, cid = rng.choice(_PRODUCTS)
    brand = rng.randrange(len(_BRANDS))
    title = f"{_BRANDS[brand]}{rng.choice(_ADJECTIVES)}{product}{rng.choice(_SPECS)}"
    if rng.random() < 0.5:
        title += rng.choice(_SPECS)
    list_time = modified - rng.randrange(0, 60 * 86400)
    valid_thru = rng.choice((7, 14))
    base_fen = _price(rng)
    sku_count = 0 if rng.random() < 0.1 or max_skus < 1 else rng.randint(1, max_skus)
    pic = f"https://img.example.invalid/bao/uploaded/i{num_iid % 4 + 1}/{num_iid}.jpg"
    item = Item(
        num_iid=num_iid,
        title=title,
        nick=nick,
        cid=cid,
        seller_cids=f"{1_200_000_000 + cid % 1000 * 7}",
        props=f"20000:{3_000_000 + brand};1627207:28341",
        pic_url=pic,
        num=rng.randrange(0, 1000),
        price=format_fen(base_fen),
        list_time=list_time,
        delist_time=list_time + valid_thru * 86400,
        modified=modified,
        created=list_time - rng.randrange(0, 365 * 86400),
        sold_quantity=min(99_999, int(rng.paretovariate(1.2)) - 1) if rng.random() < 0.8 else 0,
        outer_id=f"SC-{num_iid % 1_000_000:06d}",
        valid_thru=valid_thru,
        has_discount=rng.random() < 0.3,
        has_showcase=rng.random() < 0.1,
        postage_id=0,
        skus=make_skus(rng, sku_count, base_fen, sku_ids, modified),
    )
    item.images = [pic] + [
        f"https://img.example.invalid/bao/uploaded/i1/{num_iid}-{k}.jpg" for k in range(1, rng.randint(1, 5))
    ]
    recompute_totals(item)
    return item


def corrupt(item: Item, kind: str, rng: random.Random, sku_ids: set[int]) -> None:
    """Break ``item`` in the way ``kind`` names, so a validator has something to catch."""
    item.invalid = kind
    if kind in ("negative_price", "non_numeric_price"):
        bad = "-1.00" if kind == "negative_price" else "abc"
        item.price = bad
        if item.skus:
            item.skus[0].price = bad
    elif kind == "html_title":
        item.title = item.title[:8] + "<script>alert(1)</script>"
    elif kind == "empty_title":
        item.title = ""
    else:
        if len(item.skus) < 2:
            item.skus = make_skus(rng, 2, _fen(item.price), sku_ids, item.modified)
            recompute_totals(item)
        if kind == "num_mismatch":
            item.num += 7
        else:  # duplicate_sku_id
            item.skus[1].sku_id = item.skus[0].sku_id


# Keys a hostile or buggy upstream could send: MongoDB operators, dotted paths, a NUL.
HOSTILE_EXTRAS: dict[str, Any] = {
    "$set": {"price": "0.01", "num": 0},
    "$where": "function() { sleep(5000); return true; }",
    "a.b": "dotted key",
    "nul\u0000key": "key with a NUL",
    "props": {"$inc": {"num": 1000}, "x.y": 1},
}


def make_hostile(item: Item) -> None:
    """Operator-like SKU property names; detail records that carry HOSTILE_EXTRAS."""
    item.hostile = True
    names = ("$inc", "x.y")
    for sku in item.skus:
        parts = [part.split(":", 3) for part in sku.properties_name.split(";")]
        sku.properties_name = ";".join(
            ":".join([pid, vid, names[i % 2], value]) for i, (pid, vid, _, value) in enumerate(parts)
        )


def generate(
    *,
    seed: int,
    count: int,
    nick: str,
    max_skus: int,
    invalid: int = 0,
    isv: int = 0,
    vanish: int = 0,
    hostile: int = 0,
) -> list[Item]:
    """``count`` items in generation order (not sorted)."""
    special_count = invalid + isv + vanish + hostile
    if special_count > count:
        raise ValueError(f"special items ({special_count}) exceed the item count ({count})")
    rng = random.Random(seed)
    offsets = rng.sample(range(NUM_IID_SPAN), count)
    sku_ids: set[int] = set()
    items: list[Item] = []
    for offset in offsets:
        if items and rng.random() < 0.1:
            modified = rng.choice(items).modified
        else:
            modified = ANCHOR_TS - rng.randrange(1, SPREAD_SECONDS)
        items.append(
            make_item(
                rng, NUM_IID_BASE + offset, nick=nick, max_skus=max_skus, sku_ids=sku_ids, modified=modified
            )
        )
    special = rng.sample(range(count), special_count)
    for rank, index in enumerate(special[:invalid]):
        corrupt(items[index], INVALID_KINDS[rank % len(INVALID_KINDS)], rng, sku_ids)
    for index in special[invalid : invalid + isv]:
        items[index].isv = True
    for index in special[invalid + isv : invalid + isv + vanish]:
        items[index].vanish = True
    for index in special[invalid + isv + vanish :]:
        make_hostile(items[index])
    return items

"""The sandbox shop: current items, listing indexes and deterministic mutations.

Listing queries never sort per request in the common cases: one ascending order per ``order_by``
column is precomputed (ties broken by ``num_iid``), descending is that list reversed, and a
``start_modified``/``end_modified`` window on the modified order is two bisects. Other combinations
are computed once and kept in a small LRU cache that every mutation clears.

Choices the protocol doc leaves open, marked [unconfirmed] there or not covered at all:

- ``order_by=X:desc`` is the exact reverse of ``X:asc``, so ties come in descending ``num_iid`` order.
- The modified window is inclusive at both ends; either bound may be given alone; a window with
  start after end is simply empty.
- A delisted item leaves the on-sale listing, but ``taobao.items.seller.list.get`` still returns it
  (with ``approve_status`` ``instock``), as the seller still owns it.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from shopcrawl.money import format_fen

from .render import item_record
from .synth import (
    NUM_IID_BASE,
    NUM_IID_SPAN,
    Item,
    generate,
    make_item,
    recompute_totals,
)

ORDER_COLUMNS = ("list_time", "delist_time", "num", "modified", "sold_quantity")
MUTATION_KINDS = ("price_up", "price_down", "sold_out", "new", "delist")
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Listing:
    """``seq[lo:hi]`` is the filtered, ordered result; slicing is left to :meth:`page`."""

    seq: Sequence[Item]
    lo: int
    hi: int

    @property
    def total(self) -> int:
        return self.hi - self.lo

    def page(self, offset: int, size: int) -> Sequence[Item]:
        start = self.lo + offset
        return self.seq[start : min(self.hi, start + size)] if start < self.hi else ()


class Shop:
    def __init__(
        self,
        *,
        seed: int = 1,
        items: int = 3000,
        nick: str = "demo",
        max_skus: int = 5,
        invalid_items: int = 0,
        isv_items: int = 0,
        vanish_items: int = 0,
        hostile_items: int = 0,
    ) -> None:
        self.nick = nick
        self.max_skus = max_skus
        generated = generate(
            seed=seed,
            count=items,
            nick=nick,
            max_skus=max_skus,
            invalid=invalid_items,
            isv=isv_items,
            vanish=vanish_items,
            hostile=hostile_items,
        )
        self._items: dict[int, Item] = {item.num_iid: item for item in generated}
        self._sku_ids = {sku.sku_id for item in generated for sku in item.skus}
        self._asc: dict[str, list[Item]] = {}
        self._desc: dict[str, list[Item]] = {}
        self._rank: dict[str, dict[int, int]] = {}
        self._modified_keys: list[int] = []
        self._cache: OrderedDict[tuple[Any, ...], list[Item]] = OrderedDict()
        self.version = 0
        self._rebuild()

    def _rebuild(self) -> None:
        onsale = [item for item in self._items.values() if item.onsale]
        for column in ORDER_COLUMNS:
            ordered = sorted(onsale, key=attrgetter(column, "num_iid"))
            self._asc[column] = ordered
            self._desc[column] = ordered[::-1]
            self._rank[column] = {item.num_iid: rank for rank, item in enumerate(ordered)}
        self._modified_keys = [item.modified for item in self._asc["modified"]]
        self._cache.clear()
        self.version += 1

    @property
    def onsale_count(self) -> int:
        return len(self._modified_keys)

    def all_items(self) -> Iterable[Item]:
        """Every item, delisted ones included."""
        return self._items.values()

    def get(self, num_iid: int) -> Item | None:
        return self._items.get(num_iid)

    def listing(
        self,
        *,
        order: str = "list_time",
        descending: bool = True,
        start: int | None = None,
        end: int | None = None,
        q: str = "",
    ) -> Listing:
        """On-sale items in ``order``, filtered by an inclusive modified window and a title substring."""
        if order not in self._asc:
            raise ValueError(f"unknown order column {order!r}")
        count = len(self._modified_keys)
        lo = 0 if start is None else bisect_left(self._modified_keys, start)
        hi = count if end is None else max(lo, bisect_right(self._modified_keys, end))
        if not q and (order == "modified" or (lo, hi) == (0, count)):
            if order != "modified":
                return Listing(self._desc[order] if descending else self._asc[order], 0, count)
            if descending:
                return Listing(self._desc["modified"], count - hi, count - lo)
            return Listing(self._asc["modified"], lo, hi)
        key = (order, descending, start, end, q)
        found = self._cache.get(key)
        if found is None:
            found = self._filtered(order, descending, lo, hi, q)
            self._cache[key] = found
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return Listing(found, 0, len(found))

    def _filtered(self, order: str, descending: bool, lo: int, hi: int, q: str) -> list[Item]:
        count = len(self._modified_keys)
        if (hi - lo) * 4 >= count:  # a wide window: filter the precomputed order
            low = self._modified_keys[lo] if lo < count else 0
            high = self._modified_keys[hi - 1] if hi > 0 else -1
            seq = self._desc[order] if descending else self._asc[order]
            return [item for item in seq if low <= item.modified <= high and (not q or q in item.title)]
        found = [item for item in self._asc["modified"][lo:hi] if not q or q in item.title]
        if order != "modified":
            rank = self._rank[order]
            found.sort(key=lambda item: rank[item.num_iid])
        if descending:
            found.reverse()
        return found

    def mutate(
        self,
        *,
        seed: int,
        price_up: int = 0,
        price_down: int = 0,
        sold_out: int = 0,
        new: int = 0,
        delist: int = 0,
        now: int | None = None,
    ) -> dict[str, list[int]]:
        """Apply deterministic changes; return the num_iids changed per kind.

        Items are drawn with ``random.Random(seed)`` from the on-sale items that are neither invalid nor
        isv items, sorted by num_iid, so the same shop state and seed give the same changes. One item
        gets at most one change per call. Every changed item gets ``modified = now`` (whole seconds).
        """
        counts = {
            "price_up": price_up,
            "price_down": price_down,
            "sold_out": sold_out,
            "new": new,
            "delist": delist,
        }
        for kind, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{kind} must be a non-negative integer, got {value!r}")
        moment = int(time.time()) if now is None else now
        rng = random.Random(seed)
        pool = sorted(i.num_iid for i in self._items.values() if i.onsale and not i.invalid and not i.isv)
        wanted = price_up + price_down + sold_out + delist
        if wanted > len(pool):
            raise ValueError(f"asked to change {wanted} items but only {len(pool)} can be changed")
        picked = rng.sample(pool, wanted)
        changed: dict[str, list[int]] = {}
        start = 0
        for kind in ("price_up", "price_down", "sold_out", "delist"):
            changed[kind] = sorted(picked[start : start + counts[kind]])
            start += counts[kind]
        for num_iid in changed["price_up"]:
            self._reprice(self._items[num_iid], rng, up=True, now=moment)
        for num_iid in changed["price_down"]:
            self._reprice(self._items[num_iid], rng, up=False, now=moment)
        for num_iid in changed["sold_out"]:
            item = self._items[num_iid]
            for sku in item.skus:
                sku.quantity = 0
                sku.modified = moment
            item.num = 0
            item.modified = moment
        for num_iid in changed["delist"]:
            self._items[num_iid].onsale = False
            self._items[num_iid].modified = moment
        changed["new"] = sorted(self._add_new(rng, new, moment))
        self._rebuild()
        return {kind: changed[kind] for kind in MUTATION_KINDS}

    @staticmethod
    def _reprice(item: Item, rng: random.Random, *, up: bool, now: int) -> None:
        def moved(price: str) -> str:
            yuan, _, cents = price.partition(".")
            fen = int(yuan) * 100 + int(cents.ljust(2, "0"))
            if up:
                return format_fen(max(fen + 1, round(fen * rng.uniform(1.05, 1.5))))
            # valid prices are >= 0.10 (synth.MIN_SKU_FEN), so this always goes down
            return format_fen(max(1, min(fen - 1, round(fen * rng.uniform(0.5, 0.95)))))

        for sku in item.skus:
            sku.price = moved(sku.price)
            sku.modified = now
        if item.skus:
            recompute_totals(item)
        else:
            item.price = moved(item.price)
        item.modified = now

    def _add_new(self, rng: random.Random, count: int, now: int) -> list[int]:
        added = []
        for _ in range(count):
            num_iid = NUM_IID_BASE + rng.randrange(NUM_IID_SPAN)
            while num_iid in self._items:
                num_iid = NUM_IID_BASE + rng.randrange(NUM_IID_SPAN)
            item = make_item(
                rng, num_iid, nick=self.nick, max_skus=self.max_skus, sku_ids=self._sku_ids, modified=now
            )
            item.list_time = item.created = now
            item.delist_time = now + item.valid_thru * 86400
            self._items[num_iid] = item
            added.append(num_iid)
        return added

    def dump(self, *, include_instock: bool = False) -> list[dict[str, Any]]:
        """The whole current shop (on-sale items, or every item), sorted by num_iid."""
        return [
            item_record(item) for _, item in sorted(self._items.items()) if item.onsale or include_instock
        ]

    def bad_items(self) -> dict[str, Any]:
        """Which items are deliberately invalid (and how), which trigger isv errors, and which the
        detail call omits as if deleted after listing."""
        return {
            "invalid": {str(i.num_iid): i.invalid for _, i in sorted(self._items.items()) if i.invalid},
            "isv": sorted(i.num_iid for i in self._items.values() if i.isv),
            "vanish": sorted(i.num_iid for i in self._items.values() if i.vanish),
            "hostile": sorted(i.num_iid for i in self._items.values() if i.hostile),
        }

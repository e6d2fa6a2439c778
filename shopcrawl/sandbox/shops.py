"""The shops one sandbox serves, and which one an API call names.

The default shop (``--items``, ``--seed``, ``--seller`` and the bad-item options) is built at start-up.
``--shops N`` adds ``shop-001`` ... ``shop-N``: shop k has ``--shop-items``' k-th size (see
``SandboxConfig.shop_sizes``), seed ``--seed + k``, nick ``shop-NNN``, the default shop's ``--max-skus``,
and no bad items. An extra shop is built the first time anything asks for it (an API call, a control
endpoint), so start-up time does not grow with ``--shops``; building pauses the server for about
50 ms per 1,000 items, once per shop.

How a call names its shop:

- TOP session / 1688 access token: ``--session`` is the default shop, ``<--session>-shop-NNN`` that
  extra shop. A token the OAuth endpoints issued is the default shop's (the seller who authorised).
- Gateway ``item_search_shop``: ``shop_id``, the shop's nick. ``item_get`` names no shop: the item is
  looked up in the default shop, then in the extra shops built so far, in order. Item ids are drawn per
  shop, so two shops can share one (rare: about 1 in 170 for 50 shops of 1,500 items); the first wins.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

from .config import SandboxConfig, shop_names
from .shop import Shop
from .synth import Item


class Shops:
    def __init__(self, config: SandboxConfig) -> None:
        self.default = Shop(
            seed=config.seed,
            items=config.items,
            nick=config.seller,
            max_skus=config.max_skus,
            invalid_items=config.invalid_items,
            isv_items=config.isv_items,
            vanish_items=config.vanish_items,
            hostile_items=config.hostile_items,
        )
        self._max_skus = config.max_skus
        names = shop_names(config.shops)
        # seller -> (seed, items) of every extra shop, in order; built shops are kept in ``_built``.
        self._plans = {
            name: (config.seed + k, size)
            for k, (name, size) in enumerate(zip(names, config.shop_sizes(), strict=True), start=1)
        }
        self._built: dict[str, Shop] = {}
        self._session = config.session
        self._sessions = {config.session: config.seller, **{f"{config.session}-{n}": n for n in names}}

    def seller_of_session(self, session: str) -> str | None:
        """The seller a TOP session / 1688 access token selects (``--session`` or its shop form)."""
        return self._sessions.get(session)

    def get(self, seller: str) -> Shop | None:
        """The shop of ``seller`` (an extra shop is built on this first call), or None if none is served."""
        if seller == self.default.nick:
            return self.default
        shop = self._built.get(seller)
        if shop is None and seller in self._plans:
            seed, items = self._plans[seller]
            shop = self._built[seller] = Shop(seed=seed, items=items, nick=seller, max_skus=self._max_skus)
            # As at start-up (server.serve): keep the cyclic GC from rescanning the shop's objects.
            gc.freeze()
        return shop

    def built(self) -> Iterator[Shop]:
        """The default shop, then the extra shops built so far, in order."""
        yield self.default
        yield from (self._built[name] for name in self._plans if name in self._built)

    def find_item(self, num_iid: int) -> tuple[Shop, Item] | None:
        """The first built shop that has ``num_iid``, and the item (see the module docstring)."""
        for shop in self.built():
            item = shop.get(num_iid)
            if item is not None:
                return shop, item
        return None

    def summary(self) -> list[dict[str, Any]]:
        """``[{"seller", "items", "session"}]`` for every shop, the default first; ``items`` is the
        on-sale count (an extra shop not built yet: the count it will be built with)."""
        session = self._session
        rows = [{"seller": self.default.nick, "items": self.default.onsale_count, "session": session}]
        for name, (_, items) in self._plans.items():
            built = self._built.get(name)
            count = items if built is None else built.onsale_count
            rows.append({"seller": name, "items": count, "session": f"{session}-{name}"})
        return rows

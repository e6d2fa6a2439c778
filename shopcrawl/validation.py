"""Checks a typed item for what the type system cannot: ranges, SKU consistency, garbage text.

Pure; returns the first problem as (field, reason), or None for a good item.
"""

from __future__ import annotations

import re
import unicodedata

from shopcrawl.items import ShopItem
from shopcrawl.money import MAX_FEN

MAX_TITLE_CHARS = 200
_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>|&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);|javascript:", re.I)


def text_problem(value: str) -> str | None:
    """Markup, control characters or decoding debris in a text field."""
    if _MARKUP.search(value):
        return "contains markup"
    if "\ufffd" in value:
        return "contains the replacement character (bad decoding)"
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf") and char not in "\t":
            return f"contains control character U+{ord(char):04X}"
    return None


def check_item(item: ShopItem) -> tuple[str, str] | None:
    title = item.title.strip()
    if not title:
        return "title", "empty"
    if len(title) > MAX_TITLE_CHARS:
        return "title", f"longer than {MAX_TITLE_CHARS} characters"
    problem = text_problem(item.title)
    if problem:
        return "title", problem
    if item.price_fen > MAX_FEN:
        return "price", "above 100000000 元"
    if item.modified.tzinfo is None:
        return "modified", "not timezone-aware"
    if not item.skus:
        return None
    seen: set[int] = set()
    for sku in item.skus:
        if sku.sku_id in seen:
            return "skus.sku_id", f"duplicate sku_id {sku.sku_id}"
        seen.add(sku.sku_id)
        problem = text_problem(sku.properties_name)
        if problem:
            return "skus.properties_name", problem
    total = sum(sku.quantity for sku in item.skus)
    if total != item.num:
        return "num", f"stock {item.num} is not the sum of SKU quantities {total}"
    prices = [sku.price_fen for sku in item.skus]
    if not min(prices) <= item.price_fen <= max(prices):
        return "price", f"item price {item.price} is outside its SKU prices"
    return None

"""Exact money: TOP prices are strings in 元 with fen precision; we keep integer fen (分)."""

from __future__ import annotations

import re

_PRICE_RE = re.compile(r"^([0-9]{1,9})(?:\.([0-9]{1,2}))?$")  # ASCII digits only, not \d
MAX_FEN = 100_000_000 * 100  # TOP's documented SKU price range is 0-100000000 元


class PriceError(ValueError):
    pass


def to_fen(price: str) -> int:
    """``"25.80"`` -> ``2580``. Refuses floats, signs, exponents and more than two decimals."""
    if not isinstance(price, str):
        raise PriceError(f"price must be a string, got {type(price).__name__}")
    match = _PRICE_RE.match(price.strip())
    if match is None:
        raise PriceError(f"not a price in 元 with at most two decimals: {price!r}")
    yuan, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    fen = int(yuan) * 100 + int(cents)
    if fen > MAX_FEN:
        raise PriceError(f"price above 100000000 元: {price!r}")
    return fen


def format_fen(fen: int) -> str:
    """``2580`` -> ``"25.80"``."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"

"""Field readers every dialect's record mapper shares; each raises InvalidItem naming the field."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shopcrawl.money import PriceError, to_fen
from shopcrawl.platforms.base import InvalidItem


def fen(text: str, field: str) -> tuple[str, int]:
    """``(text, exact integer fen)`` of a price string in 元."""
    try:
        return text, to_fen(text)
    except PriceError as exc:
        raise InvalidItem(field, str(exc)) from None


def timestamp(
    raw: Mapping[str, Any], field: str, parse: Callable[[str], datetime], *, required: bool, shape: str = ""
) -> datetime | None:
    """``parse(raw[field])``; ``shape`` names the expected format in the reason (else the parser's)."""
    value = raw.get(field)
    if value is None or value == "":
        if required:
            raise InvalidItem(field, "missing")
        return None
    try:
        return parse(str(value))
    except ValueError as exc:
        raise InvalidItem(field, f"not a {shape} time: {value!r}" if shape else str(exc)) from None


def title(raw: Mapping[str, Any], field: str, show: Callable[[Any], Any] = lambda v: v) -> str:
    value = raw.get(field)
    if not isinstance(value, str):
        raise InvalidItem(field, "missing" if value is None else f"not a string: {show(value)!r:.40}")
    return value

"""Shop text made safe for where it is written. Pure, no imports beyond the standard library."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would evaluate (starting with ``= + - @``, tab or CR) gets a
    leading ``'``, which spreadsheets show as text. Numbers are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value

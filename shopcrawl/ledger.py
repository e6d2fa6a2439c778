"""Which listing page first listed each item: the crawl's record of what it has listed.

In one process it is a dict; in distributed mode ``RunCoordinator`` keeps it in Redis with the
same interface, so every worker counts the same listed items and a page processed twice (after a
worker died) claims the same items again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Ledger(Protocol):
    def claim(self, page_key: str, num_iids: Iterable[int]) -> set[int]:
        """Claim the unclaimed ids for this page; return every id the page owns."""

    def listed_count(self) -> int: ...

    def set_declared_total(self, total: int) -> None: ...

    def declared_total(self) -> int | None: ...

    def set_listing_gap(self, text: str) -> None:
        """Record why the listing plan cannot reach every declared item (the first reason wins)."""

    def listing_gap(self) -> str: ...


class LocalLedger:
    def __init__(self) -> None:
        self._owner: dict[int, str] = {}
        self._declared: int | None = None
        self._gap = ""

    def claim(self, page_key: str, num_iids: Iterable[int]) -> set[int]:
        return {n for n in num_iids if self._owner.setdefault(n, page_key) == page_key}

    def listed_count(self) -> int:
        return len(self._owner)

    def set_declared_total(self, total: int) -> None:
        if self._declared is None:
            self._declared = total

    def declared_total(self) -> int | None:
        return self._declared

    def set_listing_gap(self, text: str) -> None:
        self._gap = self._gap or text

    def listing_gap(self) -> str:
        return self._gap

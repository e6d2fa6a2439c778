"""Per-call accounting: counters for ``/_sandbox/stats`` and the optional JSON-lines call log.

API calls are recorded (TOP ``/router/rest`` under its ``method``, 1688 and gateway calls under their
API name); the OAuth endpoints (counted at ``/_sandbox/oauth``) and control endpoints are not. A TOP
call missing ``method`` is counted under the method name ``""``.

Outcomes: ``ok``, ``error:<code>`` (a TOP ``error_response``), ``session_expired`` (TOP 27
``session-expired`` or a 1688 401, for a token the OAuth endpoints issued that has expired; an unknown
token stays ``error:27`` / ``auth``), and the fault, ban and business outcomes each API module names.

``by_seller`` counts the same calls per shop, for the calls that named a served shop (see ``app``).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import IO, Any


class Stats:
    def __init__(self, call_log: str | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.bans: list[list[float]] = []
        self.by_seller: dict[str, Counter[str]] = {}
        self._log: IO[str] | None = (
            open(call_log, "a", encoding="utf-8", buffering=1) if call_log else None  # noqa: SIM115
        )

    def record(
        self, t: float, method: str, outcome: str, ban_until: float | None, seller: str | None = None
    ) -> None:
        self.calls[method] += 1
        self.outcomes[outcome] += 1
        if seller is not None:
            self.by_seller.setdefault(seller, Counter())[method] += 1
        if self._log is not None:
            line = {"t": t, "method": method or None, "outcome": outcome, "ban_until": ban_until}
            self._log.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")

    def add_ban(self, start: float, end: float) -> None:
        self.bans.append([start, end])

    def snapshot(self, onsale_items: int) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "outcomes": dict(self.outcomes),
            "bans": [list(ban) for ban in self.bans],
            "items": onsale_items,
            "by_seller": {seller: dict(calls) for seller, calls in self.by_seller.items()},
        }

    def reset(self) -> None:
        self.calls.clear()
        self.outcomes.clear()
        self.bans.clear()
        self.by_seller.clear()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

"""The alerts outbox's record, shared by the SQLite and MongoDB stores.

An alert is written ``pending`` before it is sent and marked ``delivered`` once the webhook took it, so an
alert is never sent twice and never lost: what a failing webhook did not take is sent by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PENDING = "pending"
DELIVERED = "delivered"


@dataclass(frozen=True)
class AlertRecord:
    """One change to alert. ``key`` is the change's identity (``Change.key``: it names the run that
    found it); ``content_key`` names the change without that run (the base run compared against, kind,
    item, SKU, tier, old and new), so a re-run crawl that finds the same change again queues nothing.
    ``change`` is ``Change.as_dict()``: shop data only, never a secret."""

    key: str
    content_key: str
    platform: str
    seller_id: str
    run_id: str
    change: dict[str, Any] = field(hash=False)
    created_at: datetime
    status: str = PENDING
    attempts: int = 0
    last_error: str = ""
    delivered_at: datetime | None = None

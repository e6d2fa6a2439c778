"""What changed in a shop between two complete runs: prices (per item, SKU and 1688 tier), items new,
delisted and relisted, stock sold out and restocked.

Only complete runs (coverage 100%) are compared: an incomplete, interrupted or failed run never
produces a change, so a partial crawl never reads as a delisting or a sell-out. Pure apart from the
store reads; every price stays an exact string in 元 with its integer fen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

from shopcrawl.items import ShopItem
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.sqlite import Observation, TierObservation

KINDS = ("price_drop", "price_rise", "new", "delisted", "relisted", "sold_out", "restocked")


class ReportSource(Protocol):
    """The store reads a report needs (SQLite and MongoDB stores both provide them)."""

    def runs_for(self, platform: str, seller_id: str) -> list[RunRecord]: ...

    def observations_for_run(self, run_id: str) -> list[Observation]: ...

    def tier_observations_for_run(self, run_id: str) -> list[TierObservation]: ...

    def iter_items(self, seller_id: str, page_size: int = 500) -> Iterator[ShopItem]: ...

    def observed_in(
        self, platform: str, seller_id: str, num_iids: Sequence[int], run_ids: Sequence[str]
    ) -> set[int]: ...

    def titles_of(self, platform: str, seller_id: str, num_iids: Sequence[int]) -> dict[int, str]: ...


class ReportError(ValueError):
    """A report cannot be made (no such seller, run or date); the message says what to do."""


@dataclass(frozen=True)
class Change:
    """One change found by ``run_id``. ``sku_id`` is set for a SKU's change, ``start_quantity`` for
    a 1688 price tier's; neither for the item's own. ``old``/``new`` are prices (exact strings in 元)
    for price changes and stock counts for ``sold_out``/``restocked``; ``pct`` is the price change in
    percent (2 decimals)."""

    kind: str
    platform: str
    seller_id: str
    num_iid: int
    title: str
    run_id: str
    sku_id: int | None = None
    start_quantity: int | None = None
    old: str | int | None = None
    new: str | int | None = None
    pct: float | None = None

    @property
    def key(self) -> str:
        """The change's identity: the same change found again (a re-run crawl) has the same key."""
        parts = (self.platform, self.seller_id, self.run_id, self.kind, self.num_iid)
        return "|".join(map(str, (*parts, self.sku_id or "", self.start_quantity or "")))

    def as_dict(self) -> dict[str, Any]:
        """The fields that apply (``None`` ones left out), ``kind`` and ``num_iid`` first."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Comparison:
    """The two runs compared and what changed between them."""

    base: RunRecord
    current: RunRecord
    changes: list[Change]


def complete_runs(source: ReportSource, platform: str, seller_id: str) -> list[RunRecord]:
    return [run for run in source.runs_for(platform, seller_id) if run.status == "complete"]


def pick_runs(runs: Sequence[RunRecord], since: str | None) -> tuple[RunRecord, RunRecord]:
    """(base, current): the latest complete run and the one before it, or the run ``since`` names
    (a run id, or a date/time: the latest complete run started at or before it)."""
    if not runs:
        raise ReportError("no complete run of this shop in the store yet; crawl it first")
    current = runs[-1]
    if since is None:
        if len(runs) < 2:
            raise ReportError("only one complete run of this shop so far; changes need two")
        return runs[-2], current
    by_id = {run.run_id: run for run in runs}
    if since in by_id:
        base = by_id[since]
    else:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise ReportError(
                f"--since {since!r} is neither a complete run of this shop nor a date"
            ) from None
        if moment.tzinfo is None:
            moment = moment.astimezone()  # a bare date or time means this machine's local time
        earlier = [run for run in runs if run.started_at <= moment]
        if not earlier:
            raise ReportError(f"no complete run started at or before {since}")
        base = earlier[-1]
    if base.run_id == current.run_id:
        raise ReportError(f"--since {since} names the latest complete run itself; nothing to compare")
    return base, current


def compare(source: ReportSource, platform: str, seller_id: str, since: str | None = None) -> Comparison:
    runs = complete_runs(source, platform, seller_id)
    base, current = pick_runs(runs, since)
    earlier = [run.run_id for run in runs if run.started_at < base.started_at]
    base_obs = _by_item(source.observations_for_run(base.run_id), platform, seller_id)
    current_obs = _by_item(source.observations_for_run(current.run_id), platform, seller_id)
    arrived = sorted(current_obs.keys() - base_obs.keys())  # new or relisted: seen before base?
    found = diff(
        platform,
        seller_id,
        current.run_id,
        base=base_obs,
        current=current_obs,
        seen_before=source.observed_in(platform, seller_id, arrived, earlier),
        base_tiers=_tiers(source.tier_observations_for_run(base.run_id), platform, seller_id),
        current_tiers=_tiers(source.tier_observations_for_run(current.run_id), platform, seller_id),
    )
    titles = source.titles_of(platform, seller_id, sorted({c.num_iid for c in found}))
    found = [replace(c, title=titles.get(c.num_iid, "")) for c in found]
    return Comparison(base, current, found)


def diff(
    platform: str,
    seller_id: str,
    run_id: str,
    *,
    base: dict[int, dict[int, Observation]],
    current: dict[int, dict[int, Observation]],
    seen_before: set[int],
    base_tiers: dict[int, dict[int, TierObservation]] | None = None,
    current_tiers: dict[int, dict[int, TierObservation]] | None = None,
    titles: dict[int, str] | None = None,
) -> list[Change]:
    """The changes from ``base`` to ``current`` (observations by item, then SKU id; 0 = the item
    itself, for items without SKUs). ``seen_before``: items observed by complete runs before ``base``."""
    titles = titles or {}
    base_tiers, current_tiers = base_tiers or {}, current_tiers or {}
    out: list[Change] = []

    def change(kind: str, num_iid: int, **fields: Any) -> None:
        out.append(Change(kind, platform, seller_id, num_iid, titles.get(num_iid, ""), run_id, **fields))

    for num_iid in sorted(current.keys() - base.keys()):
        change("relisted" if num_iid in seen_before else "new", num_iid)
    for num_iid in sorted(base.keys() - current.keys()):
        change("delisted", num_iid)
    for num_iid in sorted(current.keys() & base.keys()):
        old_skus, new_skus = base[num_iid], current[num_iid]
        for sku_id in sorted(old_skus.keys() & new_skus.keys()):
            old, new = old_skus[sku_id], new_skus[sku_id]
            if old.price_fen != new.price_fen:
                kind = "price_drop" if new.price_fen < old.price_fen else "price_rise"
                pct = percent(old.price_fen, new.price_fen)
                change(kind, num_iid, sku_id=sku_id or None, old=old.price, new=new.price, pct=pct)
        old_tiers, new_tiers = base_tiers.get(num_iid, {}), current_tiers.get(num_iid, {})
        for start in sorted(old_tiers.keys() & new_tiers.keys()):
            was, now = old_tiers[start], new_tiers[start]
            if was.price_fen != now.price_fen:
                kind = "price_drop" if now.price_fen < was.price_fen else "price_rise"
                pct = percent(was.price_fen, now.price_fen)
                change(kind, num_iid, start_quantity=start, old=was.price, new=now.price, pct=pct)
        _stock_changes(num_iid, old_skus, new_skus, change)
    return out


def _stock_changes(
    num_iid: int,
    old_skus: dict[int, Observation],
    new_skus: dict[int, Observation],
    change: Callable[..., None],
) -> None:
    """The item sold out or restocked as a whole (one change), else each SKU that did."""
    old_total = sum(o.quantity for o in old_skus.values())
    new_total = sum(o.quantity for o in new_skus.values())
    if old_total > 0 and new_total == 0:
        change("sold_out", num_iid, old=old_total, new=0)
    elif old_total == 0 and new_total > 0:
        change("restocked", num_iid, old=0, new=new_total)
    else:
        for sku_id in sorted(old_skus.keys() & new_skus.keys()):
            was, now = old_skus[sku_id].quantity, new_skus[sku_id].quantity
            if sku_id and was > 0 and now == 0:
                change("sold_out", num_iid, sku_id=sku_id, old=was, new=0)
            elif sku_id and was == 0 and now > 0:
                change("restocked", num_iid, sku_id=sku_id, old=0, new=now)


def percent(old_fen: int, new_fen: int) -> float | None:
    """The change from ``old_fen`` to ``new_fen`` in percent, 2 decimals (None from a zero price)."""
    if old_fen == 0:
        return None
    exact = (Decimal(new_fen - old_fen) * 100 / Decimal(old_fen)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    return float(exact)


def _by_item(rows: Iterable[Observation], platform: str, seller_id: str) -> dict[int, dict[int, Observation]]:
    out: dict[int, dict[int, Observation]] = defaultdict(dict)
    for row in rows:
        if row.platform == platform and row.seller_id == seller_id:
            out[row.num_iid][row.sku_id] = row
    return dict(out)


def _tiers(
    rows: Iterable[TierObservation], platform: str, seller_id: str
) -> dict[int, dict[int, TierObservation]]:
    out: dict[int, dict[int, TierObservation]] = defaultdict(dict)
    for row in rows:
        if row.platform == platform and row.seller_id == seller_id:
            out[row.num_iid][row.start_quantity] = row
    return dict(out)

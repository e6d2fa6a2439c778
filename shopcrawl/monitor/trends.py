"""``shopcrawl report trends``: how a shop moves over its complete runs.

- sales velocity per item: the change in ``sold_quantity`` per day between the last two complete
  runs (TOP's listing count; the gateway's ``sales`` is stored as ``sold_quantity`` too; 1688
  listings carry no sales count, so a 1688 shop has no velocity and the report says so);
- top movers up and down, by velocity and by price change % (first to last complete run the item
  was seen in);
- shop totals per complete run: items, total stock, total sales and the median item price.

An item's price is its lowest observed price in a run (its SKUs' lowest, or its own when it has
none): the "from" price a shop page shows. Prices stay integer fen; the median is exact (a Decimal
in 元).

The report reads what its figures need, never every observation of every run: the totals the store
kept with each complete run (``run_totals``; a run finished before they were kept has them computed
here from its items, and nothing is written), the items of the first and the last two complete runs
(``items_of_runs``), and, for the items missing from the first or the last run (new, gone, relisted),
the runs that saw them (``runs_of_items``, from the per-item index alone) and their observations by
their first and last of those runs (``observations_at``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol, TextIO

from shopcrawl.monitor.changes import ReportError, ReportSource, complete_runs, percent
from shopcrawl.stores.base import ItemRun, RunRecord, ShopTotals
from shopcrawl.stores.sqlite import Observation

EXIT_ERROR = 2
TOP_N = 10
NO_SALES = "this shop's listings carry no sales count (1688 has none): no sales velocity"
_CENT = Decimal("0.01")
_RUNS_A_QUERY = 10  # runs read at once to compute totals a store did not keep (their items in memory)


class HistorySource(ReportSource, Protocol):
    """The store reads trends and the HTML page need besides the changes' (both stores provide them)."""

    def run_totals(self, platform: str, seller_id: str) -> dict[str, ShopTotals]: ...

    def items_of_runs(
        self, platform: str, seller_id: str, run_ids: Sequence[str]
    ) -> dict[str, dict[int, ItemRun]]: ...

    def item_ids(self, platform: str, seller_id: str) -> list[int]: ...

    def runs_of_items(
        self, platform: str, seller_id: str, num_iids: Sequence[int]
    ) -> dict[int, set[str]]: ...

    def observations_at(
        self, platform: str, seller_id: str, keys: Sequence[tuple[int, str]]
    ) -> list[Observation]: ...

    def observations_of_items(
        self, platform: str, seller_id: str, num_iids: Sequence[int]
    ) -> list[Observation]: ...


@dataclass(frozen=True)
class RunTotals:
    run_id: str
    started_at: str  # ISO 8601
    items: int
    stock: int
    sales: int | None  # None when no item of the run carries a sales count
    median_price: str | None  # exact, in 元

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class History:
    """What the reports need of the shop's complete runs (``runs``, oldest first): each run's shop
    totals; the items of the last two runs (one when there is one run), by num_iid; and per item seen
    by a complete run, its price (fen) in the first and in the last complete run it was seen in."""

    platform: str
    seller_id: str
    runs: list[RunRecord]
    totals: list[ShopTotals]
    latest: list[dict[int, ItemRun]]
    first_last: dict[int, tuple[int, int]]


def load_history(source: HistorySource, platform: str, seller_id: str) -> History:
    runs = complete_runs(source, platform, seller_id)
    if not runs:
        raise ReportError("no complete run of this shop in the store yet; crawl it first")
    whole = sorted({run.run_id for run in (runs[0], *runs[-2:])})  # the first and the last two
    read = source.items_of_runs(platform, seller_id, whole)
    first, latest = read.get(runs[0].run_id, {}), [read.get(run.run_id, {}) for run in runs[-2:]]
    totals = _totals(source, platform, seller_id, runs, read)
    last = latest[-1]
    first_last = {n: (first[n].price_fen, last[n].price_fen) for n in first.keys() & last.keys()}
    others = [n for n in source.item_ids(platform, seller_id) if n not in first_last]
    first_last |= _first_and_last_prices(source, platform, seller_id, runs, others)
    return History(platform, seller_id, runs, totals, latest, first_last)


def _totals(
    source: HistorySource,
    platform: str,
    seller_id: str,
    runs: Sequence[RunRecord],
    read: dict[str, dict[int, ItemRun]],
) -> list[ShopTotals]:
    """Each run's shop totals: as the store kept them, else (a run finished before they were kept)
    computed from the run's items, read a few runs a query; nothing is written."""
    found = source.run_totals(platform, seller_id)
    found |= {run_id: ShopTotals.of(items) for run_id, items in read.items() if run_id not in found}
    missing = [run.run_id for run in runs if run.run_id not in found]
    for start in range(0, len(missing), _RUNS_A_QUERY):
        chunk = missing[start : start + _RUNS_A_QUERY]
        items = source.items_of_runs(platform, seller_id, chunk)
        found |= {run_id: ShopTotals.of(items.get(run_id, {})) for run_id in chunk}
    return [found[run.run_id] for run in runs]


def _first_and_last_prices(
    source: HistorySource, platform: str, seller_id: str, runs: Sequence[RunRecord], num_iids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """Per item among ``num_iids`` seen by a complete run: its price in the first and in the last
    complete run that saw it. Two reads: the runs that saw each item (the per-item index), then the
    observations of those two runs of each item."""
    order = {run.run_id: k for k, run in enumerate(runs)}
    ends: dict[int, tuple[int, int]] = {}  # num_iid -> (index of its first, of its last complete run)
    for num_iid, run_ids in source.runs_of_items(platform, seller_id, num_iids).items():
        seen = [order[run_id] for run_id in run_ids if run_id in order]  # not incomplete runs
        if seen:
            ends[num_iid] = (min(seen), max(seen))
    keys = sorted({(n, runs[k].run_id) for n, pair in ends.items() for k in pair})
    lowest: dict[tuple[int, str], int] = {}  # (num_iid, run_id) -> lowest price over the item's SKUs
    for row in source.observations_at(platform, seller_id, keys):
        key = (row.num_iid, row.run_id)
        if key not in lowest or row.price_fen < lowest[key]:
            lowest[key] = row.price_fen
    return {
        n: (lowest[n, runs[first].run_id], lowest[n, runs[last].run_id]) for n, (first, last) in ends.items()
    }


def yuan(fen: int | Decimal) -> str:
    """Fen as an exact 元 string with 2 decimals (a half fen, from a median, rounds half-even)."""
    return str((Decimal(fen) / 100).quantize(_CENT, ROUND_HALF_EVEN))


def totals(history: History) -> list[RunTotals]:
    return [
        RunTotals(
            run.run_id,
            run.started_at.isoformat(),
            t.items,
            t.stock,
            t.sales,
            None if t.median_fen is None else yuan(t.median_fen),
        )
        for run, t in zip(history.runs, history.totals, strict=True)
    ]


def has_sales(history: History) -> bool:
    return any(t.sales is not None for t in history.totals)


def velocities(history: History) -> dict[int, dict[str, Any]]:
    """Per item in both of the last two complete runs with a sales count in each: its sales change
    per day between them (none when the runs started at the same moment)."""
    if len(history.runs) < 2:
        return {}
    before, after = history.runs[-2], history.runs[-1]
    seconds = Decimal(str((after.started_at - before.started_at).total_seconds()))
    if seconds <= 0:
        return {}
    days = seconds / 86400
    was_items, now_items = history.latest
    out: dict[int, dict[str, Any]] = {}
    for num_iid, now in now_items.items():
        was = was_items.get(num_iid)
        if was is None or was.sold_quantity is None or now.sold_quantity is None:
            continue
        delta = now.sold_quantity - was.sold_quantity
        per_day = (Decimal(delta) / days).quantize(_CENT, ROUND_HALF_EVEN)
        out[num_iid] = {
            "from_run": before.run_id,
            "to_run": after.run_id,
            "sold": delta,
            "per_day": str(per_day),
        }
    return out


def moved(history: History) -> set[int]:
    """The items whose price differs between the first and the last complete run they were seen in
    (a superset of ``price_moves``'s, cheaper to find)."""
    return {num_iid for num_iid, (old, new) in history.first_last.items() if old != new}


def price_moves(history: History) -> dict[int, dict[str, Any]]:
    """Per item whose price differs between the first and the last complete run it was seen in: both
    prices, and %."""
    out = {}
    for num_iid, (old, new) in history.first_last.items():
        pct = percent(old, new)
        if old != new and pct is not None:
            out[num_iid] = {"old": yuan(old), "new": yuan(new), "pct": pct}
    return out


def trends(source: HistorySource, platform: str, seller_id: str, top: int = TOP_N) -> dict[str, Any]:
    """The whole report as one JSON-ready object."""
    history = load_history(source, platform, seller_id)
    latest = set().union(*(items.keys() for items in history.latest))
    titles = source.titles_of(platform, seller_id, sorted(latest | moved(history)))
    return summarise(history, titles, top)


def summarise(history: History, titles: dict[int, str], top: int = TOP_N) -> dict[str, Any]:
    velocity = velocities(history) if has_sales(history) else {}
    latest = [
        {"num_iid": num_iid, "title": titles.get(num_iid, ""), **speed}
        for num_iid, speed in sorted(velocity.items())
    ]
    by_speed = sorted(latest, key=lambda v: (Decimal(v["per_day"]), -v["num_iid"]))
    moves = [
        {"num_iid": num_iid, "title": titles.get(num_iid, ""), **move}
        for num_iid, move in price_moves(history).items()
    ]
    by_pct = sorted(moves, key=lambda m: (m["pct"], m["num_iid"]))
    return {
        "platform": history.platform,
        "seller_id": history.seller_id,
        "runs": [run.run_id for run in history.runs],
        "sales_note": None if has_sales(history) else NO_SALES,
        "totals": [t.as_dict() for t in totals(history)],
        "velocity": latest,
        "movers": {
            "velocity_up": [v for v in reversed(by_speed) if Decimal(v["per_day"]) > 0][:top],
            "velocity_down": [v for v in by_speed if Decimal(v["per_day"]) < 0][:top],
            "price_up": [m for m in reversed(by_pct) if m["pct"] > 0][:top],
            "price_down": [m for m in by_pct if m["pct"] < 0][:top],
        },
    }


def trends_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from shopcrawl.monitor.report import read_report

    out = out or sys.stdout
    try:
        report = read_report(args, lambda store, platform: trends(store, platform, args.seller))
    except ReportError as exc:
        print(f"shopcrawl report trends: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        # one line: json's C encoder (indenting falls back to the pure-Python one, ~10x slower)
        out.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        print_trends(report, out)
    return 0


def print_trends(report: dict[str, Any], out: TextIO) -> None:
    from shopcrawl.monitor.report import printable

    runs = report["runs"]
    out.write(f"Trends of seller {printable(report['seller_id'])} ({report['platform']}) ")
    out.write(f"over {len(runs)} complete run{'s' if len(runs) != 1 else ''}\n")
    out.write("\nshop totals\n")
    rows = [
        (
            t["run_id"],
            t["started_at"][:16].replace("T", " "),
            str(t["items"]),
            str(t["stock"]),
            "" if t["sales"] is None else str(t["sales"]),
            t["median_price"] or "",
        )
        for t in report["totals"]
    ]
    _table(("RUN", "STARTED", "ITEMS", "STOCK", "SALES", "MEDIAN ¥"), rows, out)
    if report["sales_note"]:
        out.write(f"\n{report['sales_note']}\n")
    movers = report["movers"]
    for key, label in (("velocity_up", "selling faster"), ("velocity_down", "sales count falling")):
        if movers[key]:
            out.write(f"\ntop movers, {label} (sold per day, latest interval)\n")
            speed = [
                (str(v["num_iid"]), v["per_day"], str(v["sold"]), printable(v["title"])) for v in movers[key]
            ]
            _table(("ITEM", "PER DAY", "SOLD", "TITLE"), speed, out)
    for key, label in (("price_up", "price rises"), ("price_down", "price drops")):
        if movers[key]:
            out.write(f"\ntop movers, {label} (first to last complete run)\n")
            moved = [
                (str(m["num_iid"]), m["old"], m["new"], f"{m['pct']:+.2f}", printable(m["title"]))
                for m in movers[key]
            ]
            _table(("ITEM", "OLD", "NEW", "%", "TITLE"), moved, out)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    """Aligned columns; the last one (free text) is not padded."""
    cells = [header, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    for row in cells:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        out.write(f"{line}  {row[-1]}".rstrip() + "\n")

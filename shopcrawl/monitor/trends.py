"""``shopcrawl report trends``: how a shop moves over its complete runs.

- sales velocity per item: the change in ``sold_quantity`` per day between consecutive complete
  runs (TOP's listing count; the gateway's ``sales`` is stored as ``sold_quantity`` too; 1688
  listings carry no sales count, so a 1688 shop has no velocity and the report says so);
- top movers up and down, by velocity (the latest interval) and by price change % (first to last
  complete run the item was seen in);
- shop totals per complete run: items, total stock, total sales and the median item price.

An item's price is its lowest observed price in a run (its SKUs' lowest, or its own when it has
none): the "from" price a shop page shows. Prices stay integer fen; the median is exact (a Decimal
in 元). Each run is read with one query (``observations_for_run``), never one per item.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TextIO

from shopcrawl.monitor.changes import ReportError, ReportSource, complete_runs, percent
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.sqlite import Observation

EXIT_ERROR = 2
TOP_N = 10
NO_SALES = "this shop's listings carry no sales count (1688 has none): no sales velocity"
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class ItemRun:
    """One item as one run saw it: lowest price (fen), total stock, sales count (None: not given)."""

    price_fen: int
    quantity: int
    sold_quantity: int | None


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
    """The shop's complete runs, oldest first, each run's items by num_iid, and its observations."""

    platform: str
    seller_id: str
    runs: list[RunRecord]
    items: list[dict[int, ItemRun]]
    rows: list[list[Observation]] = field(default_factory=list)

    def sku_prices(self, num_iids: Iterable[int]) -> dict[int, dict[int, list[str | None]]]:
        """Per item and SKU (0 = the item itself), its price (exact 元) per run; None where absent."""
        wanted = set(num_iids)
        out: dict[int, dict[int, list[str | None]]] = {n: {} for n in wanted}
        for index, rows in enumerate(self.rows):
            for row in rows:
                if row.num_iid in wanted:
                    series = out[row.num_iid].setdefault(row.sku_id, [None] * len(self.rows))
                    series[index] = row.price
        return out


def load_history(source: ReportSource, platform: str, seller_id: str) -> History:
    runs = complete_runs(source, platform, seller_id)
    if not runs:
        raise ReportError("no complete run of this shop in the store yet; crawl it first")
    history = History(platform, seller_id, runs, [])
    for run in runs:
        rows = source.observations_for_run(run.run_id)
        rows = [o for o in rows if o.platform == platform and o.seller_id == seller_id]
        history.rows.append(rows)
        history.items.append(_items_of(rows))
    return history


def _items_of(rows: Sequence[Observation]) -> dict[int, ItemRun]:
    """One pass: per item, lowest price, total stock, first sales count given."""
    acc: dict[int, list[Any]] = {}
    for row in rows:
        entry = acc.get(row.num_iid)
        if entry is None:
            acc[row.num_iid] = [row.price_fen, row.quantity, row.sold_quantity]
            continue
        if row.price_fen < entry[0]:
            entry[0] = row.price_fen
        entry[1] += row.quantity
        if entry[2] is None:
            entry[2] = row.sold_quantity
    return {num_iid: ItemRun(*entry) for num_iid, entry in acc.items()}


def yuan(fen: int | Decimal) -> str:
    """Fen as an exact 元 string with 2 decimals (a half fen, from a median, rounds half-even)."""
    return str((Decimal(fen) / 100).quantize(_CENT, ROUND_HALF_EVEN))


def median_fen(values: Sequence[int]) -> Decimal | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[mid])
    return (Decimal(ordered[mid - 1]) + Decimal(ordered[mid])) / 2


def totals(history: History) -> list[RunTotals]:
    out = []
    for run, items in zip(history.runs, history.items, strict=True):
        sales = [i.sold_quantity for i in items.values() if i.sold_quantity is not None]
        median = median_fen([i.price_fen for i in items.values()])
        out.append(
            RunTotals(
                run.run_id,
                run.started_at.isoformat(),
                len(items),
                sum(i.quantity for i in items.values()),
                sum(sales) if sales else None,
                None if median is None else yuan(median),
            )
        )
    return out


def has_sales(history: History) -> bool:
    return any(i.sold_quantity is not None for items in history.items for i in items.values())


def velocities(history: History) -> dict[int, list[dict[str, Any]]]:
    """Per item, its sales change per day for each pair of consecutive complete runs it was in."""
    out: dict[int, list[dict[str, Any]]] = {}
    for k in range(1, len(history.runs)):
        before, after = history.runs[k - 1], history.runs[k]
        seconds = Decimal(str((after.started_at - before.started_at).total_seconds()))
        if seconds <= 0:
            continue
        days = seconds / 86400
        for num_iid, now in history.items[k].items():
            was = history.items[k - 1].get(num_iid)
            if was is None or was.sold_quantity is None or now.sold_quantity is None:
                continue
            delta = now.sold_quantity - was.sold_quantity
            per_day = (Decimal(delta) / days).quantize(_CENT, ROUND_HALF_EVEN)
            out.setdefault(num_iid, []).append(
                {"from_run": before.run_id, "to_run": after.run_id, "sold": delta, "per_day": str(per_day)}
            )
    return out


def price_moves(history: History) -> dict[int, dict[str, Any]]:
    """Per item seen in two or more complete runs: its price in the first and last of them, and %."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for items in history.items:
        for num_iid, item in items.items():
            first.setdefault(num_iid, item.price_fen)
            last[num_iid] = item.price_fen
    out = {}
    for num_iid, old in first.items():
        new = last[num_iid]
        pct = percent(old, new)
        if old != new and pct is not None:
            out[num_iid] = {"old": yuan(old), "new": yuan(new), "pct": pct}
    return out


def trends(source: ReportSource, platform: str, seller_id: str, top: int = TOP_N) -> dict[str, Any]:
    """The whole report as one JSON-ready object."""
    history = load_history(source, platform, seller_id)
    latest = history.items[-1].keys() | (history.items[-2].keys() if len(history.items) > 1 else set())
    titles = source.titles_of(platform, seller_id, sorted(latest | price_moves(history).keys()))
    return summarise(history, titles, top)


def summarise(history: History, titles: dict[int, str], top: int = TOP_N) -> dict[str, Any]:
    sales = has_sales(history)
    velocity = velocities(history) if sales else {}
    latest = {
        num_iid: {"num_iid": num_iid, "title": titles.get(num_iid, ""), **series[-1], "intervals": series}
        for num_iid, series in velocity.items()
        if series[-1]["to_run"] == history.runs[-1].run_id
    }
    by_speed = sorted(latest.values(), key=lambda v: (Decimal(v["per_day"]), -v["num_iid"]))
    moves = [
        {"num_iid": num_iid, "title": titles.get(num_iid, ""), **move}
        for num_iid, move in price_moves(history).items()
    ]
    by_pct = sorted(moves, key=lambda m: (m["pct"], m["num_iid"]))
    return {
        "platform": history.platform,
        "seller_id": history.seller_id,
        "runs": [run.run_id for run in history.runs],
        "sales_note": None if sales else NO_SALES,
        "totals": [t.as_dict() for t in totals(history)],
        "velocity": sorted(latest.values(), key=lambda v: v["num_iid"]),
        "movers": {
            "velocity_up": [v for v in reversed(by_speed) if Decimal(v["per_day"]) > 0][:top],
            "velocity_down": [v for v in by_speed if Decimal(v["per_day"]) < 0][:top],
            "price_up": [m for m in reversed(by_pct) if m["pct"] > 0][:top],
            "price_down": [m for m in by_pct if m["pct"] < 0][:top],
        },
    }


def trends_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from shopcrawl.monitor.report import open_report_store, platform_of

    out = out or sys.stdout
    try:
        store = open_report_store(args)
        try:
            platform = platform_of(store, args.seller, args.platform)
            report = trends(store, platform, args.seller)
        finally:
            store.close()
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

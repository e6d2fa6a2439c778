"""``shopcrawl report ...``: reports over the store (``--store``, default ``SHOPCRAWL_STORE``).

- ``changes``: what changed between the latest complete run and the one before it (or ``--since``);
  aligned tables on a terminal, ``--json`` a list of objects, ``--csv`` rows whose text cells can
  never be read as a spreadsheet formula.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO, TypeVar

from shopcrawl.config import DEFAULTS
from shopcrawl.monitor.changes import KINDS, Change, Comparison, ReportError, compare
from shopcrawl.safetext import neutralise
from shopcrawl.stores import StoreError, open_store, redact_uri

CSV_FIELDS = ("kind", "num_iid", "sku_id", "start_quantity", "old", "new", "pct", "title", "run_id")
EXIT_ERROR = 2
_R = TypeVar("_R")


def store_uri(args: argparse.Namespace) -> str:
    return str(args.store or os.environ.get("SHOPCRAWL_STORE") or DEFAULTS["SHOPCRAWL_STORE"][0])


def open_report_store(args: argparse.Namespace) -> Any:
    uri = store_uri(args)
    store = open_store(uri)
    try:
        store.open()
    except (StoreError, ValueError, OSError) as exc:
        raise ReportError(f"cannot open the store {redact_uri(uri)}: {exc}") from None
    return store


def platform_of(store: Any, seller_id: str, platform: str | None) -> str:
    """The shop's platform: as given, or the only one this seller has runs on."""
    if platform:
        return platform
    found = [p for p in ("taobao", "1688") if store.runs_for(p, seller_id)]
    if not found:
        raise ReportError(f"no runs of seller {seller_id!r} in the store; check --seller and --store")
    if len(found) > 1:
        raise ReportError(f"seller {seller_id!r} has runs on {' and '.join(found)}: pass --platform")
    return found[0]


def read_report(args: argparse.Namespace, build: Callable[[Any, str], _R]) -> _R:
    """Open the report's store, find the shop's platform, ``build(store, platform)``, close the store.
    Raises ReportError (the command prints it and exits 2)."""
    store = open_report_store(args)
    try:
        return build(store, platform_of(store, args.seller, args.platform))
    finally:
        store.close()


def add_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report", help="reports over the store: changes between runs, trends, an HTML page"
    )
    kinds = report.add_subparsers(dest="report", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--seller", required=True, help="the seller (or gateway shop id) crawled")
        parser.add_argument("--platform", choices=("taobao", "1688"), help="needed when the seller has both")
        parser.add_argument(
            "--store", help="store URI (default: $SHOPCRAWL_STORE, else sqlite:///shopcrawl.db)"
        )

    changes = kinds.add_parser(
        "changes", help="what changed between the latest complete run and the one before it (or --since)"
    )
    common(changes)
    changes.add_argument(
        "--since", help="compare with this complete run (run id) or the last one before a date"
    )
    fmt = changes.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list of change objects")
    fmt.add_argument("--csv", action="store_true", help="CSV rows (text cells safe from formula evaluation)")
    changes.set_defaults(func=changes_command)

    trends = kinds.add_parser("trends", help="sales velocity per item, top movers, shop totals over time")
    common(trends)
    trends.add_argument("--json", action="store_true", help="machine-readable output")
    trends.set_defaults(func=_lazy("shopcrawl.monitor.trends", "trends_command"))

    html = kinds.add_parser("html", help="one self-contained HTML page: price history, assortment, changes")
    common(html)
    html.add_argument("-o", "--output", required=True, help="the HTML file to write")
    html.set_defaults(func=_lazy("shopcrawl.monitor.html", "html_command"))


def _lazy(module: str, name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        import importlib

        command = getattr(importlib.import_module(module), name)
        result: int = command(args)
        return result

    return run


def changes_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        comparison = read_report(
            args, lambda store, platform: compare(store, platform, args.seller, since=args.since)
        )
    except ReportError as exc:
        print(f"shopcrawl report changes: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        json.dump([c.as_dict() for c in comparison.changes], out, ensure_ascii=False, indent=1)
        out.write("\n")
    elif args.csv:
        write_csv(comparison.changes, out)
    else:
        print_tables(comparison, out)
    return 0


def write_csv(changes: Sequence[Change], out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for change in changes:
        row = change.as_dict()
        writer.writerow([neutralise(row.get(name, "")) for name in CSV_FIELDS])


def print_tables(comparison: Comparison, out: TextIO) -> None:
    base, current = comparison.base, comparison.current
    out.write(f"Changes from run {base.run_id} ({base.started_at:%Y-%m-%d %H:%M}) ")
    out.write(f"to run {current.run_id} ({current.started_at:%Y-%m-%d %H:%M}): {len(comparison.changes)}\n")
    for kind in KINDS:
        rows = [c for c in comparison.changes if c.kind == kind]
        if not rows:
            continue
        out.write(f"\n{kind.replace('_', ' ')} ({len(rows)})\n")
        header = ("ITEM", "SKU/TIER", "OLD", "NEW", "%", "TITLE")
        cells = [header] + [
            (
                str(c.num_iid),
                str(c.sku_id) if c.sku_id else (f"≥{c.start_quantity}" if c.start_quantity else ""),
                "" if c.old is None else str(c.old),
                "" if c.new is None else str(c.new),
                "" if c.pct is None else f"{c.pct:+.2f}",
                printable(c.title),
            )
            for c in rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
        for row in cells:
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            out.write(f"{line}  {row[-1]}".rstrip() + "\n")


def printable(text: str, limit: int = 60) -> str:
    """Shop text for a terminal: control characters (escape sequences) shown, not obeyed."""
    clean = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"

"""``shopcrawl report html``: one self-contained page (no network access needed to open it).

Charts are drawn by plotly.js, inlined from the ``plotly`` package: price history per selected item
and SKU (the top price movers by default), the shop's assortment (items, stock) and sales over the
complete runs. The change tables (from ``compare``) are HTML tables.

Shop text is data, never markup: every scraped string in the HTML is escaped (``html.escape``), and
the chart data travels as JSON in a ``<script type="application/json">`` block with ``<``, ``>``,
``&`` and U+2028/2029 escaped, read with ``JSON.parse``. A Content-Security-Policy allows only the
page's own two scripts (by hash) and no network at all.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from html import escape
from pathlib import Path
from typing import Any

from shopcrawl.items import ShopItem
from shopcrawl.monitor.changes import KINDS, Comparison, ReportError, ReportSource, compare
from shopcrawl.monitor.trends import History, load_history, price_moves, summarise, totals
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.sqlite import Observation, TierObservation

EXIT_ERROR = 2
DEFAULT_ITEMS = 6  # price charts drawn by default: the top movers up and down

# Reads the JSON block, draws each chart, then marks <body data-rendered="N">.
_DRAW = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var config = {displaylogo: false, responsive: true};
  var drawn = data.charts.map(function (chart) {
    return Plotly.newPlot(document.getElementById(chart.id), chart.traces, chart.layout, config);
  });
  Promise.all(drawn).then(function () {
    document.body.setAttribute("data-rendered", String(drawn.length));
  });
})();
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.chart { width: 100%; max-width: 1000px; height: 360px; }
.note { color: #666; }
"""


def json_for_script(value: Any) -> str:
    """JSON that is inert inside a <script> block: no ``</script>``, no ``<!--``, no line separators."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def build_page(
    history: History,
    comparison: Comparison | None,
    titles: dict[int, str],
    selected: list[int] | None = None,
    plotly_js: str | None = None,
) -> str:
    """The report page as one string."""
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    summary = summarise(history, titles)
    if not selected:
        movers = summary["movers"]
        half = DEFAULT_ITEMS // 2
        selected = [m["num_iid"] for m in movers["price_up"][:half] + movers["price_down"][:half]]
    charts = _shop_charts(history, summary) + _price_charts(history, titles, selected)
    data = json_for_script({"charts": charts})
    csp = (
        f"default-src 'none'; script-src {_sha256(plotly_js)} {_sha256(_DRAW)}; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:; base-uri 'none'; form-action 'none'"
    )
    seller = escape(history.seller_id)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(csp)}">',
        f"<title>shopcrawl report: {seller} ({escape(history.platform)})</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Seller {seller} ({escape(history.platform)})</h1>",
        f'<p class="note">{len(history.runs)} complete runs, from {escape(history.runs[0].run_id)}'
        f" to {escape(history.runs[-1].run_id)}.</p>",
        "<h2>Assortment and sales</h2>",
        *(f'<div class="chart" id="{c["id"]}"></div>' for c in charts if c["id"].startswith("shop-")),
    ]
    if summary["sales_note"]:
        parts.append(f'<p class="note">{escape(summary["sales_note"])}</p>')
    parts.append(_totals_table(history))
    parts.append("<h2>Price history</h2>")
    for chart in charts:
        if chart["id"].startswith("item-"):
            parts.append(f"<h3>{escape(chart['heading'])}</h3>")
            parts.append(f'<div class="chart" id="{chart["id"]}"></div>')
    if not selected:
        parts.append('<p class="note">No price moved over these runs.</p>')
    parts.append(_change_tables(comparison))
    parts.append(f'<script type="application/json" id="report-data">{data}</script>')
    parts.append(f"<script>{plotly_js}</script>")
    parts.append(f"<script>{_DRAW}</script>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _shop_charts(history: History, summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = summary["totals"]
    x = [t["started_at"] for t in rows]

    def two_axes(
        chart_id: str, title: str, left: tuple[str, str, str], right: tuple[str, str, str]
    ) -> dict[str, Any]:
        """One chart of two per-run series: (trace name, totals key, axis title) on each y axis."""
        traces = [
            {"type": "scatter", "mode": "lines+markers", "name": name, "x": x, "y": [t[key] for t in rows]}
            for name, key, _ in (left, right)
        ]
        traces[1]["yaxis"] = "y2"
        return {
            "id": chart_id,
            "traces": traces,
            "layout": {
                "title": {"text": title},
                "yaxis": {"title": {"text": left[2]}, "rangemode": "tozero"},
                "yaxis2": {
                    "title": {"text": right[2]},
                    "overlaying": "y",
                    "side": "right",
                    "rangemode": "tozero",
                },
            },
        }

    return [
        two_axes(
            "shop-assortment",
            "Items and total stock per complete run",
            ("items", "items", "items"),
            ("stock", "stock", "stock"),
        ),
        two_axes(
            "shop-sales",
            "Total sales count and median item price per complete run",
            ("sales", "sales", "sales"),
            ("median price (¥)", "median_price", "¥"),
        ),
    ]


def _price_charts(history: History, titles: dict[int, str], selected: list[int]) -> list[dict[str, Any]]:
    x = [run.started_at.isoformat() for run in history.runs]
    charts = []
    prices = history.sku_prices(selected)
    for num_iid in selected:
        skus = prices.get(num_iid)
        if not skus:
            continue
        traces = [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"SKU {sku_id}" if sku_id else "item",
                "x": x,
                # exact 元 strings; plotly reads numeric strings as numbers; gaps where the SKU was absent
                "y": series,
            }
            for sku_id, series in sorted(skus.items())
        ]
        title = titles.get(num_iid, "")
        charts.append(
            {
                "id": f"item-{num_iid}",
                "heading": f"{num_iid} {title}",
                "traces": traces,
                "layout": {"title": {"text": f"Price of item {num_iid} (¥)"}, "showlegend": len(traces) > 1},
            }
        )
    return charts


def _totals_table(history: History) -> str:
    head = "<tr><th>run</th><th>started</th><th>items</th><th>stock</th><th>sales</th><th>median ¥</th></tr>"
    rows = [
        f"<tr><td>{escape(t.run_id)}</td><td>{escape(t.started_at[:19])}</td><td class=n>{t.items}</td>"
        f"<td class=n>{t.stock}</td><td class=n>{'' if t.sales is None else t.sales}</td>"
        f"<td class=n>{escape(t.median_price or '')}</td></tr>"
        for t in totals(history)
    ]
    return "<table>" + head + "".join(rows) + "</table>"


def _change_tables(comparison: Comparison | None) -> str:
    if comparison is None:
        return '<h2>Changes</h2><p class="note">Only one complete run so far: changes need two.</p>'
    base, current = comparison.base, comparison.current
    out = [
        f"<h2>Changes from run {escape(base.run_id)} to run {escape(current.run_id)}:"
        f" {len(comparison.changes)}</h2>"
    ]
    for kind in KINDS:
        rows = [c for c in comparison.changes if c.kind == kind]
        if not rows:
            continue
        out.append(f"<h3>{escape(kind.replace('_', ' '))} ({len(rows)})</h3><table>")
        out.append("<tr><th>kind</th><th>item</th><th>SKU/tier</th><th>old</th><th>new</th><th>%</th>")
        out.append("<th>title</th></tr>")
        for c in rows:
            tier = str(c.sku_id) if c.sku_id else (f"≥{c.start_quantity}" if c.start_quantity else "")
            cells = (
                escape(c.kind),
                str(c.num_iid),
                escape(tier),
                escape("" if c.old is None else str(c.old)),
                escape("" if c.new is None else str(c.new)),
                "" if c.pct is None else f"{c.pct:+.2f}",
            )
            out.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells))
            out.append(f'<td class="title">{escape(c.title)}</td></tr>')
        out.append("</table>")
    return "\n".join(out)


def make_report(
    source: ReportSource, platform: str, seller_id: str, selected: list[int] | None = None
) -> str:
    cached = CachedSource(source)
    history = load_history(cached, platform, seller_id)
    comparison = compare(cached, platform, seller_id) if len(history.runs) > 1 else None
    titles = source.titles_of(platform, seller_id, sorted(price_moves(history).keys() | set(selected or ())))
    return build_page(history, comparison, titles, selected)


class CachedSource:
    """A store's report reads, each run's observations read once for both the history and the changes."""

    def __init__(self, source: ReportSource) -> None:
        self._source = source
        self._observations: dict[str, list[Observation]] = {}

    def runs_for(self, platform: str, seller_id: str) -> list[RunRecord]:
        return self._source.runs_for(platform, seller_id)

    def observations_for_run(self, run_id: str) -> list[Observation]:
        if run_id not in self._observations:
            self._observations[run_id] = self._source.observations_for_run(run_id)
        return self._observations[run_id]

    def tier_observations_for_run(self, run_id: str) -> list[TierObservation]:
        return self._source.tier_observations_for_run(run_id)

    def iter_items(self, seller_id: str, page_size: int = 500) -> Iterator[ShopItem]:
        return self._source.iter_items(seller_id, page_size)

    def observed_in(
        self, platform: str, seller_id: str, num_iids: Sequence[int], run_ids: Sequence[str]
    ) -> set[int]:
        return self._source.observed_in(platform, seller_id, num_iids, run_ids)

    def titles_of(self, platform: str, seller_id: str, num_iids: Sequence[int]) -> dict[int, str]:
        return self._source.titles_of(platform, seller_id, num_iids)


def html_command(args: argparse.Namespace) -> int:
    from shopcrawl.monitor.report import open_report_store, platform_of

    try:
        store = open_report_store(args)
        try:
            platform = platform_of(store, args.seller, args.platform)
            page = make_report(store, platform, args.seller, list(getattr(args, "item", None) or []))
        finally:
            store.close()
    except ReportError as exc:
        print(f"shopcrawl report html: {exc}", file=sys.stderr)
        return EXIT_ERROR
    Path(args.output).write_text(page, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0

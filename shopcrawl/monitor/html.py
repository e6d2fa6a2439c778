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
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

from shopcrawl.monitor.changes import KINDS, Comparison, ReportError, compare
from shopcrawl.monitor.trends import History, HistorySource, load_history, moved, summarise, totals

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


def default_selection(summary: dict[str, Any]) -> list[int]:
    """The items whose price is charted by default: the top price movers, half up and half down."""
    movers, half = summary["movers"], DEFAULT_ITEMS // 2
    return [m["num_iid"] for m in movers["price_up"][:half] + movers["price_down"][:half]]


def sku_prices(
    source: HistorySource, history: History, num_iids: Iterable[int]
) -> dict[int, dict[int, list[str | None]]]:
    """Per item and SKU (0 = the item itself), its price (exact 元) per complete run; None where
    absent. One read of these few items' observations, not of every run."""
    order = {run.run_id: k for k, run in enumerate(history.runs)}
    wanted = sorted(set(num_iids))
    out: dict[int, dict[int, list[str | None]]] = {n: {} for n in wanted}
    for row in source.observations_of_items(history.platform, history.seller_id, wanted):
        k = order.get(row.run_id)
        if k is not None:  # not an incomplete run's
            out[row.num_iid].setdefault(row.sku_id, [None] * len(history.runs))[k] = row.price
    return out


def build_page(
    history: History,
    summary: dict[str, Any],
    comparison: Comparison | None,
    titles: dict[int, str],
    selected: list[int],
    prices: dict[int, dict[int, list[str | None]]],
    plotly_js: str | None = None,
) -> str:
    """The report page as one string: ``summary`` is ``summarise(history, titles)``, ``prices`` the
    ``sku_prices`` of the ``selected`` items."""
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    charts = _shop_charts(history, summary) + _price_charts(history, titles, selected, prices)
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


def _price_charts(
    history: History,
    titles: dict[int, str],
    selected: list[int],
    prices: dict[int, dict[int, list[str | None]]],
) -> list[dict[str, Any]]:
    x = [run.started_at.isoformat() for run in history.runs]
    charts = []
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
    source: HistorySource, platform: str, seller_id: str, selected: list[int] | None = None
) -> str:
    history = load_history(source, platform, seller_id)
    comparison = compare(source, platform, seller_id) if len(history.runs) > 1 else None
    titles = source.titles_of(platform, seller_id, sorted(moved(history) | set(selected or ())))
    summary = summarise(history, titles)
    selected = selected or default_selection(summary)
    prices = sku_prices(source, history, selected)
    return build_page(history, summary, comparison, titles, selected, prices)


def html_command(args: argparse.Namespace) -> int:
    from shopcrawl.monitor.report import read_report

    selected = list(getattr(args, "item", None) or [])
    try:
        page = read_report(args, lambda store, platform: make_report(store, platform, args.seller, selected))
    except ReportError as exc:
        print(f"shopcrawl report html: {exc}", file=sys.stderr)
        return EXIT_ERROR
    Path(args.output).write_text(page, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0

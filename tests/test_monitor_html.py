"""The HTML report: escaping and inert JSON (pure), then two real sandbox crawls rendered in headless
Chromium (Debian's `chromium`): the charts drew and a hostile title ran nothing."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import subprocess
from html import escape

from shopcrawl.monitor.html import html_command, json_for_script
from tests.conftest import crawl
from tests.services import unavailable

# Were it markup, either part would mark <body>; the CSP is not what keeps it inert (escaping is).
HOSTILE = (
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
    "</script><script>document.body.setAttribute('data-pwned','script')</script>\u2028&amp;"
)


def test_json_for_script_is_inert_and_round_trips():
    value = {"t": HOSTILE, "n": [1, "2.50"]}
    text = json_for_script(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == value


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable(
            "chromium is missing: scripts/test.sh installs Debian's chromium (apt-get install chromium)"
        )
    return found


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    base = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)


def test_html_report_renders_its_charts_in_chromium_and_a_hostile_title_runs_nothing(
    sandbox_factory, tmp_path, capsys
):
    chromium = _chromium()
    sandbox = sandbox_factory("--items", "30", "--seed", "17")
    assert crawl(sandbox.url, tmp_path).returncode == 0
    changed = sandbox.mutate(seed=2, price_up=2, price_down=2, sold_out=1, new=1, delist=1)
    assert crawl(sandbox.url, tmp_path).returncode == 0
    moved = changed["price_up"][0]
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("UPDATE items SET title = ? WHERE num_iid = ?", (HOSTILE, moved))
    page = tmp_path / "report.html"
    args = argparse.Namespace(seller="demo", platform=None, store=f"sqlite:///{tmp_path / 'shop.db'}")
    args.output = str(page)
    assert html_command(args) == 0
    source = page.read_text()
    assert HOSTILE not in source and escape(HOSTILE) in source
    assert "https://" not in source.split("<script>", 1)[0]  # nothing outside plotly.js points at the network

    dump = _run(chromium, "--dump-dom", page.as_uri())
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = dump.stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    # 2 shop charts + the 4 items whose price moved; plotly draws each into an SVG
    assert 'data-rendered="6"' in body.group(0), body.group(0)
    assert dom.count('class="main-svg"') >= 6
    assert "data-pwned" not in body.group(0)
    assert "<img src=" not in dom  # the title stayed text ...
    assert escape(HOSTILE, quote=False)[:40] in dom  # ... and is shown
    for kind in ("price_rise", "price_drop", "sold_out", "new", "delisted"):
        assert f"<td>{kind}</td>" in dom

    shot = tmp_path / "report.png"
    result = _run(chromium, "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0 and shot.stat().st_size > 10_000
    with capsys.disabled():  # in the test's output even when pytest captures it
        print(f"\nscreenshot of the HTML report: {shot}")

"""End to end: crawl a sandbox shop, change it with a known set of changes (``/_sandbox/mutate``), crawl
again, and `shopcrawl report changes` lists exactly those changes: for each API and both stores."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from tests.conftest import crawl

MUTATION = {"seed": 5, "price_up": 4, "price_down": 4, "sold_out": 3, "new": 3, "delist": 3}
# api, platform, path after the sandbox's root
APIS = {
    "top": ("top", "taobao", "/router/rest"),
    "1688": ("1688", "1688", "/openapi"),
    "gateway-taobao": ("gateway", "taobao", ""),
    "gateway-1688": ("gateway", "1688", ""),
}


def report(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "shopcrawl.cli",
        "report",
        "changes",
        "--seller",
        "demo",
        "--store",
        store,
    ]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def two_crawls(sandbox, tmp_path, api: str, store: str | None):
    name, platform, path = APIS[api]
    env = {"SHOPCRAWL_API": name, "SHOPCRAWL_PLATFORM": platform}
    if store is not None:
        env["SHOPCRAWL_STORE"] = store
    first = crawl(sandbox.base + path, tmp_path, env=env)
    assert first.returncode == 0, first.stderr + first.log[-2000:]
    before = {item["num_iid"]: item for item in sandbox.shop()}
    injected = sandbox.mutate(**MUTATION)
    after = {item["num_iid"]: item for item in sandbox.shop()}
    second = crawl(sandbox.base + path, tmp_path, env=env)
    assert second.returncode == 0, second.stderr + second.log[-2000:]
    return first, injected, before, after


def expected_items(injected, before) -> dict[int, set[str]]:
    """What each injected change must show as, item by item (an item "sold out" that had no stock to
    begin with did not change)."""
    want: dict[int, set[str]] = {}
    for kind, ids in injected.items():
        if kind == "sold_out":
            ids = [n for n in ids if before[n]["num"] > 0]
        shown = {"price_up": "price_rise", "price_down": "price_drop", "delist": "delisted"}.get(kind, kind)
        for num_iid in ids:
            want[num_iid] = {shown}
    return want


@pytest.mark.parametrize("store_kind", ["sqlite", "mongodb"])
@pytest.mark.parametrize("api", list(APIS))
def test_report_changes_lists_exactly_the_injected_changes(
    sandbox_factory, tmp_path, request, api, store_kind
):
    store = (
        request.getfixturevalue("mongo_uri")
        if store_kind == "mongodb"
        else f"sqlite:///{tmp_path / 'shop.db'}"
    )
    sandbox = sandbox_factory("--items", "120", "--seed", "31")
    _, injected, before, after = two_crawls(sandbox, tmp_path, api, store)
    out = report(store, "--json")
    assert out.returncode == 0, out.stderr
    changes = json.loads(out.stdout)
    found: dict[int, set[str]] = defaultdict(set)
    for change in changes:
        found[change["num_iid"]].add(change["kind"])
    assert dict(found) == expected_items(injected, before)  # no more and no fewer, item by item
    titles = {c["num_iid"]: c["title"] for c in changes}
    assert all(titles[n] == before.get(n, after.get(n, {})).get("title") for n in titles if n in before)
    for change in changes:
        if change["kind"] in ("price_rise", "price_drop"):
            assert (change["pct"] > 0) == (change["kind"] == "price_rise"), change
    if api == "top":  # TOP's records are the truth's shape: every SKU's old and new price, exactly
        prices = {
            (c["num_iid"], c.get("sku_id")): (c["old"], c["new"])
            for c in changes
            if c["kind"] in ("price_rise", "price_drop")
        }
        truth = {}
        for num_iid in injected["price_up"] + injected["price_down"]:
            old, new = before[num_iid], after[num_iid]
            if not new["skus"]:
                truth[(num_iid, None)] = (old["price"], new["price"])
            for was, now in zip(old["skus"], new["skus"], strict=True):
                if was["price"] != now["price"]:
                    truth[(num_iid, was["sku_id"])] = (was["price"], now["price"])
        assert prices == truth


def test_terminal_tables_and_csv_show_hostile_text_inert(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "60", "--seed", "32")
    store = f"sqlite:///{tmp_path / 'shop.db'}"
    _, injected, _, _ = two_crawls(sandbox, tmp_path, "top", store)
    table = report(store)
    assert table.returncode == 0, table.stderr
    assert "price drop (" in table.stdout and "delisted (" in table.stdout
    assert str(injected["delist"][0]) in table.stdout
    csv_out = report(store, "--csv")
    rows = csv_out.stdout.splitlines()
    assert rows[0] == "kind,num_iid,sku_id,start_quantity,old,new,pct,title,run_id"
    assert len(rows) - 1 == len(json.loads(report(store, "--json").stdout))


def test_without_two_complete_runs_it_says_so(sandbox_factory, tmp_path):
    sandbox = sandbox_factory("--items", "30", "--seed", "33")
    store = f"sqlite:///{tmp_path / 'shop.db'}"
    assert crawl(sandbox.url, tmp_path).returncode == 0
    out = report(store, "--json")
    assert out.returncode == 2 and "only one complete run" in out.stderr
    unknown = report(f"sqlite:///{tmp_path / 'none.db'}")
    assert unknown.returncode == 2 and "no runs of seller 'demo'" in unknown.stderr

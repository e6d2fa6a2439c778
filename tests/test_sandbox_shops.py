"""One sandbox serving many shops (``--shops``): sizes, which shop each API's credentials or shop_id
select, per-shop stats and mutations, over HTTP in a real subprocess."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest

from shopcrawl.platforms import top
from shopcrawl.platforms.aop import protocol as aop
from shopcrawl.sandbox.config import SandboxConfig, shop_names
from shopcrawl.sandbox.server import main
from shopcrawl.sandbox.shops import Shops
from tests.sandbox_proc import APP_KEY, APP_SECRET, SESSION, _send

# Four extra shops of 30, 60, 120 and 240 items (30 * 8 ** ((k-1)/3)) beside a default shop of 120.
ARGS = ("--items", "120", "--seed", "3", "--shops", "4", "--shop-items", "30-240")
SIZES = {"demo": 120, "shop-001": 30, "shop-002": 60, "shop-003": 120, "shop-004": 240}
FIELDS = "num_iid,title,price,nick"


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory(*ARGS)


def top_listing(sb, session, **params):
    params = {"fields": FIELDS, "page_size": "200", **params}
    return sb.call(top.LISTING_METHOD, session=session, **params)


def all_top_ids(sb, session) -> list[int]:
    ids, page = [], 1
    while True:
        body = top_listing(sb, session, page_no=str(page))["items_onsale_get_response"]
        rows = body.get("items", {}).get("item", [])
        ids += [row["num_iid"] for row in rows]
        if len(rows) < 200:
            return ids
        page += 1


def aop_listing(sb, token, page_no=1):
    params = {"pageNo": str(page_no), "pageSize": "20", "statusList": '["published"]'}
    path = aop.url_path(aop.LISTING_API, APP_KEY)
    now = datetime.now(UTC)
    signed = aop.signed_params(params, path=path, secret=APP_SECRET, access_token=token, now=now)
    data = urllib.parse.urlencode(signed).encode()
    return _send(urllib.request.Request(f"{sb.base}/openapi/{path}", data=data, method="POST"), 30)


def gateway(sb, api, **params):
    query = urllib.parse.urlencode({"key": APP_KEY, "secret": APP_SECRET, **params})
    with urllib.request.urlopen(f"{sb.base}/taobao/{api}/?{query}", timeout=30) as response:
        return json.loads(response.read())


def ids_of(shop_records) -> set[int]:
    return {item["num_iid"] for item in shop_records}


def test_sizes_names_and_sessions_follow_the_options(sandbox):
    listed = sandbox.shops()
    assert [row["seller"] for row in listed] == list(SIZES)
    assert {row["seller"]: row["items"] for row in listed} == SIZES
    assert [row["session"] for row in listed] == [SESSION] + [f"{SESSION}-shop-{k:03d}" for k in range(1, 5)]
    for seller, size in SIZES.items():
        records = sandbox.shop(seller)
        assert len(records) == size and {item["nick"] for item in records} == {seller}
    assert ids_of(sandbox.shop("shop-003")) != ids_of(sandbox.shop())  # same size, another seed


@pytest.mark.parametrize(
    ("count", "spread"), [(1, "200-5000"), (2, "200-5000"), (50, "200-5000"), (7, "5-5")]
)
def test_sizes_are_the_geometric_formula(count, spread):
    low, high = (int(n) for n in spread.split("-"))
    sizes = SandboxConfig(shops=count, shop_items=spread).shop_sizes()
    if count == 1:
        assert sizes == [low]
        return
    assert sizes == [round(low * (high / low) ** ((k - 1) / (count - 1))) for k in range(1, count + 1)]
    assert sizes[0] == low and sizes[-1] == high and sizes == sorted(sizes)


def test_names_have_three_digits_or_more():
    assert shop_names(3) == ["shop-001", "shop-002", "shop-003"]
    assert shop_names(1000)[0] == "shop-0001" and shop_names(1000)[-1] == "shop-1000"
    assert shop_names(0) == []


def test_extra_shops_are_built_on_first_use():
    shops = Shops(SandboxConfig(items=20, shops=3, shop_items="10-40"))
    assert [shop.nick for shop in shops.built()] == ["demo"]
    assert shops.get("shop-002") is shops.get("shop-002")  # built once
    assert [shop.nick for shop in shops.built()] == ["demo", "shop-002"]
    assert shops.get("shop-004") is None and shops.get("nobody") is None


def test_a_top_listing_and_detail_read_the_shop_the_session_selects(sandbox):
    truth = {seller: ids_of(sandbox.shop(seller)) for seller in ("shop-003", "shop-004")}
    body = top_listing(sandbox, f"{SESSION}-shop-003")["items_onsale_get_response"]
    assert body["total_results"] == 120
    assert {row["nick"] for row in body["items"]["item"]} == {"shop-003"}
    assert set(all_top_ids(sandbox, f"{SESSION}-shop-003")) == truth["shop-003"]
    assert len(all_top_ids(sandbox, f"{SESSION}-shop-004")) == 240  # two pages
    assert set(all_top_ids(sandbox, f"{SESSION}-shop-004")) == truth["shop-004"]
    wanted = sorted(truth["shop-003"])[:5]
    detail = sandbox.call(top.DETAIL_METHOD, session=f"{SESSION}-shop-003", fields=FIELDS,
                          num_iids=",".join(map(str, wanted)))  # fmt: skip
    assert [row["num_iid"] for row in detail["items_seller_list_get_response"]["items"]["item"]] == wanted
    elsewhere = sandbox.call(top.DETAIL_METHOD, fields=FIELDS, num_iids=",".join(map(str, wanted)))
    assert "items" not in elsewhere["items_seller_list_get_response"]  # not the default shop's items


def test_the_default_session_still_reads_the_default_shop(sandbox):
    body = top_listing(sandbox, SESSION)["items_onsale_get_response"]
    assert body["total_results"] == 120
    assert {row["nick"] for row in body["items"]["item"]} == {"demo"}
    assert set(all_top_ids(sandbox, SESSION)) == ids_of(sandbox.shop())


@pytest.mark.parametrize("suffix", ["-shop-999", "-shop-005", "-demo", "shop-001", "-SHOP-001"])
def test_an_unknown_shop_session_is_refused_as_today(sandbox, suffix):
    error = top_listing(sandbox, SESSION + suffix)["error_response"]
    assert (error["code"], error["sub_code"]) == (27, "invalid-sessionkey")
    reply = aop_listing(sandbox, SESSION + suffix)
    assert reply.status == 401 and json.loads(reply.body)["error_code"] == aop.UNAUTHORISED


def test_a_1688_listing_reads_the_shop_the_access_token_selects(sandbox):
    for row in sandbox.shops():
        ids, page = [], 1
        while True:
            reply = aop_listing(sandbox, row["session"], page)
            assert reply.status == 200
            body = aop.loads(reply.body)
            assert body["totalRecords"] == SIZES[row["seller"]]
            ids += [item["productID"] for item in body["result"]]
            if not body["result"]:
                break
            page += 1
        assert sorted(ids) == sorted(ids_of(sandbox.shop(row["seller"]))), row["seller"]


def test_a_gateway_listing_reads_the_shop_id_and_item_get_finds_any_shops_item(sandbox):
    for seller, size in SIZES.items():
        body = gateway(sandbox, "item_search_shop", shop_id=seller, sort="bid")
        assert body["error_code"] == "0000"
        assert int(body["items"]["total_results"]) == size
        rows = body["items"]["item"]
        assert {row["shop_id"] for row in rows} == {row["seller_nick"] for row in rows} == {seller}
        assert {int(row["num_iid"]) for row in rows} <= ids_of(sandbox.shop(seller))
    assert gateway(sandbox, "item_search_shop", shop_id="shop-005", sort="bid")["error_code"] == "2000"
    num_iid = min(ids_of(sandbox.shop("shop-002")))
    item = gateway(sandbox, "item_get", num_iid=str(num_iid))["item"]
    assert int(item["num_iid"]) == num_iid and item["shop_id"] == item["nick"] == "shop-002"


def test_by_seller_counts_each_shops_calls(sandbox):
    sandbox.reset_stats()
    top_listing(sandbox, SESSION)
    top_listing(sandbox, f"{SESSION}-shop-001")
    top_listing(sandbox, f"{SESSION}-shop-001")
    top_listing(sandbox, f"{SESSION}-shop-999")  # refused: no shop
    aop_listing(sandbox, f"{SESSION}-shop-002")
    gateway(sandbox, "item_search_shop", shop_id="shop-004", sort="bid")
    gateway(sandbox, "item_search_shop", shop_id="nobody", sort="bid")  # no such shop
    stats = sandbox.stats()
    assert stats["by_seller"] == {
        "demo": {top.LISTING_METHOD: 1},
        "shop-001": {top.LISTING_METHOD: 2},
        "shop-002": {aop.LISTING_API: 1},
        "shop-004": {"item_search_shop": 1},
    }
    assert stats["calls"] == {top.LISTING_METHOD: 4, aop.LISTING_API: 1, "item_search_shop": 2}
    assert stats["items"] == 120  # the default shop's
    assert sandbox.reset_stats()["by_seller"] == {}


def test_a_mutation_changes_only_the_shop_it_names(sandbox):
    sellers = ("demo", "shop-001", "shop-002")
    before = {seller: sandbox.shop(seller, include_instock=True) for seller in sellers}
    changed = sandbox.mutate("shop-001", seed=4, price_up=3, new=2, delist=1)
    assert ids_of(before["shop-001"]).isdisjoint(changed["new"])
    assert set(changed["price_up"] + changed["delist"]) <= ids_of(before["shop-001"])
    assert len(sandbox.shop("shop-001")) == 30 + 2 - 1
    assert sandbox.shop("demo", include_instock=True) == before["demo"]
    assert sandbox.shop("shop-002", include_instock=True) == before["shop-002"]
    listed = {row["seller"]: row["items"] for row in sandbox.shops()}
    assert listed == {**SIZES, "shop-001": 31}
    body = top_listing(sandbox, f"{SESSION}-shop-001")["items_onsale_get_response"]
    assert body["total_results"] == 31
    sandbox.mutate(seed=4, delist=2)  # no seller: the default shop
    assert len(sandbox.shop()) == 118 and len(sandbox.shop("shop-001")) == 31


def test_an_unknown_seller_is_refused_by_the_control_endpoints(sandbox):
    for path, seller in (("/_sandbox/shop?seller=", "shop-005"), ("/_sandbox/bad-items?seller=", "nobody")):
        reply = _send(urllib.request.Request(sandbox.base + path + seller), 30)
        assert reply.status == 404 and seller in reply.json()["error"]
    data = json.dumps({"seed": 1, "seller": "shop-005", "new": 1}).encode()
    reply = _send(urllib.request.Request(sandbox.base + "/_sandbox/mutate", data=data, method="POST"), 30)
    assert reply.status == 400 and "shop-005" in reply.json()["error"]
    assert sandbox.bad_items("shop-001") == {"invalid": {}, "isv": [], "vanish": [], "hostile": []}


@pytest.mark.parametrize("spread", ["0-10", "10-5", "abc", "10", "-5", "5-", "1.5-9", "10 - 20", "1-2-3"])
def test_a_bad_shop_items_value_is_refused(spread, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["--shops", "3", "--shop-items", spread])
    assert refused.value.code == 2
    assert "--shop-items" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--shop-items"):
        SandboxConfig(shop_items=spread)

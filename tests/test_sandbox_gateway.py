"""The sandbox's item_search_shop / item_get gateway, over HTTP in a real subprocess."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

import pytest

from shopcrawl.money import to_fen
from shopcrawl.sandbox.config import BASE_PATHS
from tests.sandbox_proc import APP_KEY, APP_SECRET, run_sandbox

ITEMS = 300


def get(sandbox, platform: str, api: str, *, auth: bool = True, **params: str):
    """(decoded body, raw bytes); prices that arrive as JSON numbers are kept exact."""
    if auth:
        params = {"key": APP_KEY, "secret": APP_SECRET, **params}
    url = f"{sandbox.base}/{platform}/{api}/?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        raw = response.read()
    return json.loads(raw, parse_float=Decimal), raw


def listing(sandbox, platform="taobao", **params):
    return get(sandbox, platform, "item_search_shop", shop_id="demo", **params)[0]


def everything(sandbox, platform: str, sort: str, **params) -> list[dict]:
    rows, page = [], 1
    while page <= 20:
        body = listing(sandbox, platform, sort=sort, page=str(page), **params)
        if body["error_code"] == "2000":
            return rows
        rows += body["items"]["item"]
        page += 1
    raise AssertionError("more pages than the cap allows")


@pytest.fixture(scope="module")
def sandbox():
    args = ("--items", str(ITEMS), "--seed", "9", "--vanish-items", "3", "--hostile-items", "2")
    with run_sandbox(*args, "--gateway-page-size", "30", "--gateway-max-pages", "20") as sb:
        yield sb


@pytest.fixture(scope="module")
def truth(sandbox):
    return {item["num_iid"]: item for item in sandbox.shop()}


def test_the_gateway_base_path_is_the_bare_host():
    assert BASE_PATHS["gateway"] == ""


@pytest.mark.parametrize("creds", [{}, {"key": APP_KEY}, {"key": APP_KEY, "secret": "wrong"}])
def test_a_wrong_or_missing_key_or_secret_is_4005(sandbox, creds):
    body, raw = get(sandbox, "taobao", "item_search_shop", auth=False, shop_id="demo", **creds)
    assert body["error_code"] == "4005" and body["success"] == 0
    assert b"wrong" not in raw  # the secret is never echoed


def test_a_listing_page_states_its_size_total_and_page_count(sandbox):
    body = listing(sandbox, sort="bid", page="1")
    items = body["items"]
    assert body["error_code"] == "0000"
    assert (int(items["page_size"]), int(items["total_results"]), int(items["page_count"])) == (30, ITEMS, 10)
    assert len(items["item"]) == 30
    assert "key" not in json.dumps(body["call_args"]) and "secret" not in json.dumps(body["call_args"])


def test_types_are_mixed_deterministically(sandbox):
    rows = listing(sandbox, sort="bid", page="2")["items"]["item"]
    assert {type(row["num_iid"]) for row in rows} == {str, int}
    assert {type(row["price"]) for row in rows} == {str, Decimal}
    assert listing(sandbox, sort="bid", page="2")["items"] == listing(sandbox, sort="bid", page="2")["items"]
    assert type(listing(sandbox, sort="bid", page="1")["items"]["page"]) is str
    assert type(listing(sandbox, sort="bid", page="2")["items"]["page"]) is int


def test_bid_is_price_then_id_and_bid_desc_its_exact_reverse(sandbox, truth):
    bid = everything(sandbox, "taobao", "bid")
    desc = everything(sandbox, "taobao", "_bid")
    ids = [int(row["num_iid"]) for row in bid]
    assert sorted(ids) == sorted(truth)
    assert ids == sorted(ids, key=lambda i: (to_fen(truth[i]["price"]), i))
    assert [int(row["num_iid"]) for row in desc] == ids[::-1]


@pytest.mark.parametrize(
    ("platform", "sorts"), [("taobao", ("new", "sale", "_sale")), ("1688", ("_credit", "_sale", "time"))]
)
def test_every_sort_lists_every_item_once(sandbox, truth, platform, sorts):
    for sort in sorts:
        ids = [int(row["num_iid"]) for row in everything(sandbox, platform, sort)]
        assert sorted(ids) == sorted(truth), sort


@pytest.mark.parametrize(("platform", "sort"), [("taobao", "_credit"), ("1688", "new"), ("1688", "x")])
def test_a_sort_the_platform_lacks_is_a_param_error(sandbox, platform, sort):
    assert listing(sandbox, platform, sort=sort)["error_code"] == "4003"


def test_the_depth_cap_answers_2000_past_page_count(sandbox):
    with run_sandbox("--items", "100", "--gateway-page-size", "10", "--gateway-max-pages", "3") as small:
        assert int(listing(small, sort="bid", page="3")["items"]["page_count"]) == 3
        body = listing(small, sort="bid", page="4")
        assert body["error_code"] == "2000" and "items" not in body
    assert listing(sandbox, sort="bid", page="11")["error_code"] == "2000"  # past the end


def test_1688_price_bands_are_inclusive_and_counted(sandbox, truth):
    prices = sorted({to_fen(item["price"]) for item in truth.values()})
    low, high = prices[40], prices[120]
    band = {i for i, item in truth.items() if low <= to_fen(item["price"]) <= high}
    start, end = f"{low // 100}.{low % 100:02d}", f"{high // 100}.{high % 100:02d}"
    body = listing(sandbox, "1688", sort="bid", page="1", start_price=start, end_price=end)
    assert int(body["items"]["total_results"]) == len(band)
    rows = everything(sandbox, "1688", "bid", start_price=start, end_price=end)
    assert {int(row["num_iid"]) for row in rows} == band
    assert listing(sandbox, "1688", sort="bid", start_price="abc")["error_code"] == "4003"
    only_start = everything(sandbox, "1688", "_sale", start_price=start)
    assert {int(r["num_iid"]) for r in only_start} == {
        i for i in band | set(truth) if to_fen(truth[i]["price"]) >= low
    }


def test_item_get_answers_the_record_and_1688_adds_tiers(sandbox, truth):
    num_iid = next(i for i in sorted(truth) if truth[i]["skus"] and i % 7 and i % 3 == 0)
    taobao, raw = get(sandbox, "taobao", "item_get", num_iid=str(num_iid))
    item = taobao["item"]
    assert taobao["error_code"] == "0000" and int(item["num_iid"]) == num_iid
    assert isinstance(item["price"], Decimal) and f'"price":{truth[num_iid]["price"]}'.encode() in raw
    assert [int(s["sku_id"]) for s in item["skus"]["sku"]] == [s["sku_id"] for s in truth[num_iid]["skus"]]
    assert sum(int(s["quantity"]) for s in item["skus"]["sku"]) == int(item["num"])
    assert item["modified_time"] == truth[num_iid]["modified"] and "priceRange" not in item
    b2b = get(sandbox, "1688", "item_get", num_iid=str(num_iid))[0]["item"]
    assert [tier[0] for tier in b2b["priceRange"]] == [1, 10, 100] and int(b2b["min_num"]) >= 1
    no_time = next(i for i in sorted(truth) if i % 7 == 0)
    assert "modified_time" not in get(sandbox, "taobao", "item_get", num_iid=str(no_time))[0]["item"]


def test_vanished_items_answer_2000_and_bad_ids_4003(sandbox):
    vanish = sandbox.bad_items()["vanish"]
    assert len(vanish) == 3
    body = get(sandbox, "taobao", "item_get", num_iid=str(vanish[0]))[0]
    assert (body["error_code"], body["reason"]) == ("2000", "商品没找到")
    assert get(sandbox, "taobao", "item_get", num_iid="x")[0]["error_code"] == "4003"


def test_calls_are_counted_per_api(sandbox):
    sandbox.reset_stats()
    listing(sandbox, sort="bid")
    get(sandbox, "1688", "item_get", num_iid="1")
    assert sandbox.stats()["calls"] == {"item_search_shop": 1, "item_get": 1}


def test_quota_qps_and_faults_map_to_gateway_codes():
    with run_sandbox("--items", "20", "--quota-ban-seconds", "5") as sb:
        assert listing(sb, sort="bid")["error_code"] == "4007"
    with run_sandbox("--items", "20", "--rate-isp", "1") as sb:
        assert [listing(sb, sort="bid")["error_code"] for _ in range(4)] == ["4000", "4001", "4002", "4000"]
    with run_sandbox("--items", "20", "--qps", "2", "--ban-seconds", "30") as sb:
        codes = [listing(sb, sort="bid")["error_code"] for _ in range(4)]
        assert codes[:2] == ["0000", "0000"] and codes[2:] == ["4000", "4000"]
    with run_sandbox("--items", "20", "--rate-5xx", "1") as sb:
        with pytest.raises(urllib.error.HTTPError) as caught:
            listing(sb, sort="bid")
        with caught.value as error:
            assert error.code in (502, 503) and b"<html>" in error.read()

"""The TOP sandbox, exercised over HTTP in a real subprocess (plus a few pure-function checks)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shopcrawl.money import to_fen
from shopcrawl.platforms import top
from shopcrawl.sandbox.checks import Credentials, TopError, check_system
from shopcrawl.sandbox.server import build_parser, main
from shopcrawl.sandbox.shop import Shop
from tests.sandbox_proc import SandboxProc, run_sandbox

LISTING = top.LISTING_METHOD
DETAIL = top.DETAIL_METHOD
LIST_FIELDS = "num_iid,title,price,num,modified"
DATE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
ITEMS = 600


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox("--items", str(ITEMS), "--seed", "7", "--invalid-items", "6", "--isv-items", "2") as sb:
        yield sb


@pytest.fixture(scope="module")
def truth(sandbox):
    return {item["num_iid"]: item for item in sandbox.shop()}


@pytest.fixture(scope="module")
def good_ids(sandbox, truth):
    """Items that are neither deliberately invalid nor isv items, in num_iid order."""
    bad = sandbox.bad_items()
    return [i for i in sorted(truth) if str(i) not in bad["invalid"] and i not in bad["isv"]]


def listing(sb: SandboxProc, **params):
    params.setdefault("fields", LIST_FIELDS)
    return sb.call(LISTING, **params)


def error_of(body) -> dict:
    assert set(body) == {"error_response"}, body
    return body["error_response"]


def all_ids(sb: SandboxProc, order_by: str) -> list[int]:
    ids: list[int] = []
    for page_no in range(1, 20):  # bounded
        payload = listing(sb, order_by=order_by, page_no=str(page_no), page_size="200")
        page = payload["items_onsale_get_response"].get("items", {}).get("item", [])
        if not page:
            break
        ids.extend(item["num_iid"] for item in page)
    return ids


# --- signing and system params -------------------------------------------------------------------


@pytest.mark.parametrize("sign_method", top.SIGN_METHODS)
def test_each_sign_method_is_accepted(sandbox, sign_method):
    body = listing(sandbox, sign_method=sign_method, page_size="5")
    payload = body["items_onsale_get_response"]
    assert payload["total_results"] == ITEMS
    assert len(payload["items"]["item"]) == 5


@pytest.mark.parametrize(
    ("sign_method", "simplify", "expected"),
    [
        ("hmac-sha256", False, "75D55E674CC2B3077C547FE923E7272B4B0B705899B80BFAD71DAA49C5E8A204"),
        ("md5", False, "9AC8871EB2641E778958D686C580D9A2"),
        ("hmac", False, "C9975039633CBC4645A278792DB90D31"),
        ("hmac-sha256", True, "AD584D53CB8650D3071587C51646B1982E67D5EB555CCCC83CE081A39CAB1EE7"),
    ],
)
def test_protocol_vector_d_passes_the_checks(sign_method, simplify, expected):
    params = {
        "method": "taobao.items.onsale.get",
        "app_key": "12345678",
        "session": "test-session",
        "timestamp": "2024-01-01 12:00:00",
        "format": "json",
        "v": "2.0",
        "sign_method": sign_method,
        "fields": "num_iid,title,price,num,modified",
        "page_no": "1",
        "page_size": "200",
        "order_by": "modified:asc",
        "q": "连衣裙",
        "sign": expected,
    }
    if simplify:
        params.update(simplify="true", cid="")
    now = top.parse_time("2024-01-01 12:03:00").timestamp()
    check_system(params, Credentials("12345678", "helloworld", "test-session"), now)
    with pytest.raises(TopError) as caught:
        check_system({**params, "sign": expected[:-1] + "0"}, Credentials("12345678", "helloworld", "x"), now)
    assert caught.value.code == 25


@pytest.mark.parametrize("sign_method", top.SIGN_METHODS)
def test_an_empty_value_signed_as_its_key_alone_is_accepted_too(sign_method):
    """The classic Python, Node and PHP clients send ``q=`` and sign it as ``q``; the Java SDK never
    sends it. Which rule TOP applies is unconfirmed, so the sandbox accepts both, and nothing else."""
    params = {
        "method": "taobao.items.onsale.get",
        "app_key": "12345678",
        "session": "test-session",
        "timestamp": "2024-01-01 12:00:00",
        "format": "json",
        "v": "2.0",
        "sign_method": sign_method,
        "fields": "num_iid,title",
        "q": "",
    }
    creds = Credentials("12345678", "helloworld", "test-session")
    now = top.parse_time("2024-01-01 12:03:00").timestamp()
    message = "".join(k + v for k, v in sorted(params.items())).encode()
    assert b"fieldsnum_iid,titleformatjson" in message and b"methodtaobao.items.onsale.getq" in message
    key = b"helloworld"
    classic = {
        "md5": lambda: hashlib.md5(key + message + key).hexdigest(),
        "hmac": lambda: hmac.new(key, message, hashlib.md5).hexdigest(),
        "hmac-sha256": lambda: hmac.new(key, message, hashlib.sha256).hexdigest(),
    }[sign_method]().upper()
    dropped = top.sign(params, "helloworld", sign_method)
    assert classic != dropped
    for signature in (classic, dropped):
        check_system({**params, "sign": signature}, creds, now)
    with pytest.raises(TopError) as caught:
        check_system({**params, "sign": classic[:-1] + ("0" if classic[-1] != "0" else "1")}, creds, now)
    assert caught.value.code == 25


def test_vector_credentials_over_http():
    with run_sandbox("--items", "30", "--app-key", "12345678", "--app-secret", "helloworld") as sb:
        sb.app_key, sb.secret = "12345678", "helloworld"
        for sign_method in top.SIGN_METHODS:
            body = listing(sb, sign_method=sign_method, q="连衣裙", order_by="modified:asc")
            assert "items_onsale_get_response" in body


def _drop(*names: str):
    def edit(params: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in params.items() if k not in names}

    return edit


def _resign(**changes: str):
    def edit(params: dict[str, str]) -> dict[str, str]:
        params = {k: v for k, v in {**params, **changes}.items() if v}
        if params.get("sign_method", "md5") in top.SIGN_METHODS:
            params["sign"] = top.sign(params, "sandbox-app-secret", params.get("sign_method", "md5"))
        return params

    return edit


SKEW = timedelta(minutes=11)


@pytest.mark.parametrize(
    ("kwargs", "edit", "code"),
    [
        ({}, _drop("method"), 21),
        ({}, _drop("sign"), 24),
        ({}, _drop("app_key"), 28),
        ({"app_key": "someone-else"}, None, 29),
        ({}, _resign(timestamp=""), 30),
        ({"skew": -SKEW}, None, 31),
        ({"skew": SKEW}, None, 31),
        ({}, _resign(timestamp="2026/01/01 00:00:00"), 31),
        ({}, _resign(v=""), 32),
        ({}, _resign(v="abc"), 33),
        ({}, _resign(v="3.0"), 34),
        ({}, _resign(format="yaml"), 23),
        ({}, _resign(sign_method="sha1"), 25),
        ({"secret": "wrong-secret"}, None, 25),
        ({}, lambda p: {**p, "sign": p["sign"].lower()}, 25),
        ({"session": ""}, None, 26),
        ({"session": "wrong-session"}, None, 27),
        ({}, _resign(method="taobao.item.delete"), 22),
    ],
)
def test_system_param_errors(sandbox, kwargs, edit, code):
    if "skew" in kwargs:  # computed now, not at collection time, so a slow suite cannot shrink it
        kwargs = {"now": datetime.now(top.GMT8) + kwargs["skew"]}
    params = sandbox.sign_params(LISTING, fields=LIST_FIELDS, **kwargs)
    if edit is not None:
        params = edit(params)
    reply = sandbox.post(params)
    assert reply.status == 200
    if params.get("format") != "json":
        assert reply.body.startswith(b"<?xml")
        assert ET.fromstring(reply.body).findtext("code") == str(code)
        return
    error = error_of(reply.json())
    assert error["code"] == code
    assert error["msg"] and error["request_id"]
    if code == 27:
        assert error["sub_code"] == "invalid-sessionkey"


def test_http_action_not_allowed(sandbox):
    request = urllib.request.Request(sandbox.url, method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert ET.fromstring(response.read()).findtext("code") == "9"


def test_epoch_millisecond_timestamp_is_accepted(sandbox):
    body = listing(sandbox, system={"timestamp": str(int(time.time() * 1000))})
    assert body["items_onsale_get_response"]["total_results"] == ITEMS


def test_query_string_and_form_params_are_merged(sandbox):
    params = sandbox.sign_params(LISTING, fields=LIST_FIELDS, page_size="3")
    query = {k: v for k, v in params.items() if k in top.SYSTEM_PARAMS or k == "method"}
    form = {k: v for k, v in params.items() if k not in query}
    assert set(form) == {"fields", "page_size"}
    reply = sandbox.post(form, query=query)
    assert len(reply.json()["items_onsale_get_response"]["items"]["item"]) == 3
    reply = sandbox.get(params)
    assert len(reply.json()["items_onsale_get_response"]["items"]["item"]) == 3


# --- business params ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        (LISTING, {"fields": LIST_FIELDS, "page_size": "201"}, 41),
        (LISTING, {"fields": LIST_FIELDS, "page_size": "0"}, 41),
        (LISTING, {"fields": LIST_FIELDS, "page_no": "abc"}, 41),
        (LISTING, {"fields": LIST_FIELDS, "order_by": "price:asc"}, 41),
        (LISTING, {"fields": LIST_FIELDS, "start_modified": "2026-13-01 00:00:00"}, 41),
        (LISTING, {"fields": "num_iid,skus"}, 41),
        (LISTING, {"page_size": "10"}, 40),
        (DETAIL, {"fields": "num_iid"}, 40),
        (DETAIL, {"num_iids": "1"}, 40),
        (DETAIL, {"fields": "num_iid", "num_iids": "12,abc"}, 41),
        (DETAIL, {"fields": "num_iid", "num_iids": ",".join(str(n) for n in range(1, 22))}, 41),
    ],
)
def test_business_param_errors(sandbox, method, params, code):
    error = error_of(sandbox.call(method, **params))
    assert error["code"] == code
    assert error["msg"] == ("Invalid Arguments" if code == 41 else "Missing Required Arguments")


def test_paging_cap_refuses_past_page_no_times_page_size(sandbox):
    payload = listing(sandbox, page_no="100", page_size="200")["items_onsale_get_response"]
    assert payload["total_results"] == ITEMS and "items" not in payload
    error = error_of(listing(sandbox, page_no="101", page_size="200"))
    assert error["code"] == 41
    assert "20000" in error["sub_msg"] and "page_no*page_size" in error["sub_msg"]


# --- shapes ---------------------------------------------------------------------------------------


def test_wrapped_and_simplified_shapes(sandbox, truth):
    fields = "num_iid,title,price,num,modified,cid,sold_quantity,approve_status"
    wrapped = listing(sandbox, fields=fields, page_size="7")
    payload = wrapped["items_onsale_get_response"]
    assert set(payload) == {"total_results", "items", "request_id"}
    items = payload["items"]["item"]
    simple = listing(sandbox, fields=fields, page_size="7", system={"simplify": "true"})
    assert set(simple) == {"total_results", "items", "request_id"}
    assert simple["items"] == items
    for item in items:
        assert list(item) == fields.split(",")
        assert isinstance(item["num_iid"], int) and len(str(item["num_iid"])) == 12
        assert isinstance(item["num"], int) and isinstance(item["cid"], int)
        assert isinstance(item["price"], str) and DATE_RE.match(item["modified"])
        assert item["approve_status"] == "onsale"
        assert item == {k: truth[item["num_iid"]][k] for k in fields.split(",")}


def test_detail_shapes(sandbox, truth, good_ids):
    ids = [i for i in good_ids if len(truth[i]["skus"]) >= 2][:3]
    fields = "num_iid,title,price,num,sku,item_img,desc"
    wrapped = sandbox.call(DETAIL, fields=fields, num_iids=",".join(map(str, ids)))
    payload = wrapped["items_seller_list_get_response"]
    assert "total_results" not in payload
    items = payload["items"]["item"]
    assert [item["num_iid"] for item in items] == ids
    simple = sandbox.call(
        DETAIL, fields=fields, num_iids=",".join(map(str, ids)), system={"simplify": "true"}
    )
    for wrapped_item, simple_item in zip(items, simple["items"], strict=True):
        skus = wrapped_item["skus"]["sku"]
        assert simple_item["skus"] == skus
        assert simple_item["item_imgs"] == wrapped_item["item_imgs"]["item_img"]
        assert wrapped_item["desc"].startswith("<p>")
        assert skus == truth[wrapped_item["num_iid"]]["skus"]
        assert wrapped_item["num"] == sum(sku["quantity"] for sku in skus)
        assert to_fen(wrapped_item["price"]) == min(to_fen(sku["price"]) for sku in skus)
        assert all(isinstance(sku["sku_id"], int) and isinstance(sku["quantity"], int) for sku in skus)
        assert all(re.match(r"^1627207:\d+;20509:\d+$", sku["properties"]) for sku in skus)


def test_xml_is_the_default_format(sandbox):
    params = sandbox.sign_params(LISTING, fields=LIST_FIELDS, page_size="4")
    params = _resign(format="")(params)
    reply = sandbox.post(params)
    assert reply.content_type.startswith("text/xml")
    root = ET.fromstring(reply.body)
    assert root.tag == "items_onsale_get_response"
    assert root.findtext("total_results") == str(ITEMS)
    assert len(root.findall("items/item")) == 4
    assert root.find("items/item/num_iid") is not None


def test_total_zero_omits_items(sandbox):
    for simplify in ("false", "true"):
        body = listing(sandbox, q="不存在的商品名称", system={"simplify": simplify})
        payload = body.get("items_onsale_get_response", body)
        assert payload["total_results"] == 0
        assert "items" not in payload


# --- listing semantics ----------------------------------------------------------------------------


def test_modified_window_is_inclusive(sandbox, truth):
    counts = Counter(item["modified"] for item in truth.values())
    shared = next(moment for moment, n in sorted(counts.items()) if n >= 2)
    body = listing(sandbox, start_modified=shared, end_modified=shared, order_by="list_time:desc")
    payload = body["items_onsale_get_response"]
    assert payload["total_results"] == counts[shared]
    assert {item["modified"] for item in payload["items"]["item"]} == {shared}
    low, high = sorted(counts)[10], sorted(counts)[60]
    expected = sorted((m, i) for i, item in truth.items() if low <= (m := item["modified"]) <= high)
    for order_by in ("modified:asc", "modified:desc", "sold_quantity:asc"):
        page = listing(sandbox, start_modified=low, end_modified=high, order_by=order_by, page_size="200")
        got = page["items_onsale_get_response"]["items"]["item"]
        assert sorted((item["modified"], item["num_iid"]) for item in got) == expected
    got = listing(sandbox, start_modified=low, end_modified=high, order_by="modified:asc", page_size="200")
    assert [
        (i["modified"], i["num_iid"]) for i in got["items_onsale_get_response"]["items"]["item"]
    ] == expected


@pytest.mark.parametrize("order_by", ["modified:asc", "list_time:desc", "sold_quantity:desc", "num:asc"])
def test_paging_is_complete_and_stable(sandbox, truth, order_by):
    ids = all_ids(sandbox, order_by)
    assert len(ids) == len(set(ids)) == ITEMS
    assert set(ids) == set(truth)
    column, direction = order_by.split(":")
    keys = [(truth[i][column], i) for i in ids]  # ties by num_iid; desc is the exact reverse of asc
    assert keys == sorted(keys, reverse=direction == "desc")


def test_detail_omits_unknown_ids(sandbox, good_ids):
    known = good_ids[:2]
    body = sandbox.call(
        DETAIL, fields="num_iid,title", num_iids=f"{known[0]},111111111111,{known[1]},{known[0]}"
    )
    assert [item["num_iid"] for item in body["items_seller_list_get_response"]["items"]["item"]] == known
    body = sandbox.call(DETAIL, fields="num_iid", num_iids="111111111111")
    assert set(body["items_seller_list_get_response"]) == {"request_id"}


def test_invalid_items_are_served_broken(sandbox, truth):
    invalid = {int(k): kind for k, kind in sandbox.bad_items()["invalid"].items()}
    assert sorted(invalid.values()) == sorted(
        [
            "negative_price",
            "non_numeric_price",
            "html_title",
            "num_mismatch",
            "duplicate_sku_id",
            "empty_title",
        ]
    )
    body = sandbox.call(DETAIL, fields="num_iid,title,price,num,sku", num_iids=",".join(map(str, invalid)))
    for item in body["items_seller_list_get_response"]["items"]["item"]:
        kind = invalid[item["num_iid"]]
        skus = item.get("skus", {}).get("sku", [])
        broken = {
            "negative_price": item["price"] == "-1.00",
            "non_numeric_price": item["price"] == "abc",
            "html_title": "<script>" in item["title"],
            "empty_title": item["title"] == "",
            "num_mismatch": item["num"] != sum(sku["quantity"] for sku in skus),
            "duplicate_sku_id": len({sku["sku_id"] for sku in skus}) < len(skus),
        }
        assert broken[kind], (kind, item)
    assert set(invalid) <= set(all_ids(sandbox, "list_time:desc"))


def test_isv_items_fail_detail_calls(sandbox, good_ids):
    isv = sandbox.bad_items()["isv"]
    assert len(isv) == 2
    good = good_ids[0]
    error = error_of(sandbox.call(DETAIL, fields="num_iid", num_iids=f"{good},{isv[0]}"))
    assert (error["code"], error["sub_code"]) == (15, "isv.item-data-error")
    assert error["sub_msg"] == f"商品数据异常 num_iid={isv[0]}"
    assert "items_seller_list_get_response" in sandbox.call(DETAIL, fields="num_iid", num_iids=str(good))


def test_stats_count_api_calls_only(sandbox):
    sandbox.reset_stats()
    listing(sandbox, page_size="1")
    sandbox.call(LISTING, secret="wrong-secret", fields=LIST_FIELDS)
    sandbox.shop()
    stats = sandbox.stats()
    assert stats["calls"] == {LISTING: 2}
    assert stats["outcomes"] == {"ok": 1, "error:25": 1}
    assert stats["items"] == ITEMS and stats["bans"] == []
    assert sandbox.reset_stats()["calls"] == {}


# --- limits and faults ----------------------------------------------------------------------------


def test_qps_ban_counts_down(tmp_path: Path):
    log = tmp_path / "calls.jsonl"
    with run_sandbox("--items", "30", "--qps", "2", "--ban-seconds", "2", "--call-log", str(log)) as sb:
        assert "items_onsale_get_response" in listing(sb)
        assert "items_onsale_get_response" in listing(sb)
        seconds = []
        for _ in range(100):  # bounded: the ban lasts 2 s
            body = listing(sb)
            if "error_response" not in body:
                break
            error = body["error_response"]
            assert (error["code"], error["msg"]) == (7, "App Call Limited")
            assert error["sub_code"] == "accesscontrol.limited-by-api-access-count"
            seconds.append(
                int(re.fullmatch(r"This ban will last for (\d+) more seconds", error["sub_msg"])[1])
            )
            if len(seconds) == 1:  # the ban is per API method
                assert "items_seller_list_get_response" in sb.call(DETAIL, fields="num_iid", num_iids="1")
            time.sleep(0.1)
        else:
            pytest.fail("the ban never ended")
        assert seconds[0] == 2 and seconds[-1] == 1
        assert seconds == sorted(seconds, reverse=True)
        stats = sb.stats()
        assert len(stats["bans"]) == 1
        start, end = stats["bans"][0]
        assert end - start == pytest.approx(2.0)
        assert stats["outcomes"]["ban"] == len(seconds)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["outcome"] for line in lines].count("ban") == len(seconds)
    assert all((line["ban_until"] is not None) == (line["outcome"] == "ban") for line in lines)
    assert {line["method"] for line in lines} == {LISTING, DETAIL}
    assert all(isinstance(line["t"], float) for line in lines)


def test_quota_ban_answers_every_call():
    with run_sandbox("--items", "10", "--quota-ban-seconds", "31062") as sb:
        for method in (LISTING, DETAIL):
            error = error_of(sb.call(method, fields="num_iid", num_iids="1"))
            assert error["code"] == 7
            assert error["sub_code"] == "accesscontrol.limited-by-app-access-count"
            assert error["sub_msg"] == "This ban will last for 31062 more seconds"
        assert error_of(sb.call(LISTING, secret="bad", fields="num_iid"))["code"] == 25


def test_fault_5xx():
    with run_sandbox("--items", "10", "--rate-5xx", "1") as sb:
        for _ in range(4):
            reply = sb.post(sb.sign_params(LISTING, fields=LIST_FIELDS))
            assert reply.status in (502, 503)
            assert reply.content_type.startswith("text/html") and b"<html>" in reply.body
        # a refused signature is answered before any fault
        assert error_of(sb.call(LISTING, secret="bad", fields=LIST_FIELDS))["code"] == 25
        assert sb.stats()["outcomes"] == {"5xx": 4, "error:25": 1}


def test_fault_timeout():
    with run_sandbox("--items", "10", "--rate-timeout", "1", "--timeout-delay", "1") as sb:
        started = time.monotonic()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            sb.post(sb.sign_params(LISTING, fields=LIST_FIELDS), timeout=0.2)
        assert time.monotonic() - started < 0.9
        reply = sb.post(sb.sign_params(LISTING, fields=LIST_FIELDS), timeout=10)
        assert reply.status == 504
        assert sb.stats()["outcomes"] == {"timeout": 2}


def test_fault_truncated():
    with run_sandbox("--items", "10", "--rate-truncated", "1") as sb:
        reply = sb.post(sb.sign_params(LISTING, fields=LIST_FIELDS))
        assert reply.status == 200 and reply.body.startswith(b'{"items_onsale_get_response":{')
        with pytest.raises(ValueError):
            json.loads(reply.body)


def test_fault_garbled():
    with run_sandbox("--items", "10", "--rate-garbled", "1") as sb:
        reply = sb.post(sb.sign_params(LISTING, fields=LIST_FIELDS))
        assert reply.status == 200
        with pytest.raises(ValueError):
            json.loads(reply.body)
        assert sb.stats()["outcomes"] == {"garbled": 1}


def test_fault_isp():
    with run_sandbox("--items", "10", "--rate-isp", "1") as sb:
        sub_codes = []
        for _ in range(4):
            error = error_of(sb.call(LISTING, fields=LIST_FIELDS))
            assert (error["code"], error["msg"]) == (15, "Remote service error")
            sub_codes.append(error["sub_code"])
        assert all(code.startswith("isp.") for code in sub_codes)
        assert len(set(sub_codes)) == 4


# --- mutations and determinism ----------------------------------------------------------------------


def test_mutations_change_what_the_api_returns():
    with run_sandbox("--items", "300", "--seed", "3") as sb:
        before = {item["num_iid"]: item for item in sb.shop()}
        moment = datetime.now(top.GMT8).replace(microsecond=0)
        changed = sb.mutate(seed=5, price_up=3, price_down=3, sold_out=2, new=4, delist=2)
        assert {kind: len(ids) for kind, ids in changed.items()} == {
            "price_up": 3,
            "price_down": 3,
            "sold_out": 2,
            "new": 4,
            "delist": 2,
        }
        after = {item["num_iid"]: item for item in sb.shop()}
        assert set(after) == (set(before) | set(changed["new"])) - set(changed["delist"])
        fields = "num_iid,price,num,modified,approve_status,sku"
        ids = [i for kind in ("price_up", "price_down", "sold_out", "delist") for i in changed[kind]]
        body = sb.call(DETAIL, fields=fields, num_iids=",".join(map(str, ids)))
        got = {item["num_iid"]: item for item in body["items_seller_list_get_response"]["items"]["item"]}
        for num_iid in changed["price_up"]:
            assert to_fen(got[num_iid]["price"]) > to_fen(before[num_iid]["price"])
        for num_iid in changed["price_down"]:
            assert to_fen(got[num_iid]["price"]) < to_fen(before[num_iid]["price"])
        for num_iid in changed["sold_out"]:
            assert got[num_iid]["num"] == 0
            assert all(sku["quantity"] == 0 for sku in got[num_iid].get("skus", {}).get("sku", []))
        for num_iid in changed["delist"]:
            assert got[num_iid]["approve_status"] == "instock"
        for num_iid in ids:
            assert top.parse_time(got[num_iid]["modified"]) >= moment - timedelta(seconds=1)
        # an incremental listing by modified time finds exactly the changed on-sale items
        recent = listing(
            sb, start_modified=top.format_timestamp(moment - timedelta(seconds=1)), page_size="200"
        )
        found = {item["num_iid"] for item in recent["items_onsale_get_response"]["items"]["item"]}
        assert found == set(ids + changed["new"]) - set(changed["delist"])
        assert sb.stats()["items"] == 300 + 4 - 2
        assert len(sb.shop(include_instock=True)) == 304
        request = urllib.request.Request(sb.base + "/_sandbox/mutate", data=b'{"seed": 1, "bogus": 2}')
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        with refused.value:
            assert refused.value.code == 400


def test_same_seed_same_shop():
    first, second, other = (Shop(seed=seed, items=200, invalid_items=6, isv_items=2) for seed in (9, 9, 10))
    assert first.dump() == second.dump() and first.bad_items() == second.bad_items()
    assert first.dump() != other.dump()
    moment = int(time.time())
    kinds = {"price_up": 4, "price_down": 4, "sold_out": 2, "new": 3, "delist": 2}
    assert first.mutate(seed=1, now=moment, **kinds) == second.mutate(seed=1, now=moment, **kinds)
    assert first.dump(include_instock=True) == second.dump(include_instock=True)
    with (
        run_sandbox("--items", "200", "--seed", "9") as one,
        run_sandbox("--items", "200", "--seed", "9") as two,
    ):
        assert one.shop() == two.shop() == Shop(seed=9, items=200).dump()
        process = one.process
    assert process.returncode == 0  # stopped cleanly by SIGTERM


def test_shop_data_is_plausible(truth):
    nums = list(truth)
    assert len(set(nums)) == len(nums) and all(100_000_000_000 <= n <= 999_999_999_999 for n in nums)
    sku_ids = [sku["sku_id"] for item in truth.values() for sku in item["skus"]]
    without_skus = sum(not item["skus"] for item in truth.values())
    assert 0.03 * ITEMS < without_skus < 0.2 * ITEMS
    assert len(set(sku_ids)) >= len(sku_ids) - 1  # one item duplicates a sku_id on purpose
    assert len({item["modified"] for item in truth.values()}) > ITEMS * 0.8
    assert all(item["list_time"] <= item["modified"] for item in truth.values())
    assert all(1 <= len(item["skus"]) <= 5 for item in truth.values() if item["skus"])


# --- command line ---------------------------------------------------------------------------------


def test_every_option_has_help():
    for action in build_parser()._actions:
        assert action.help and action.help.strip(), action.dest


def test_bad_option_values_are_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--rate-5xx", "2"])
    assert exited.value.code == 2
    assert "--rate-5xx" in capsys.readouterr().err


def test_latency_holds_every_api_call_without_serialising_them():
    """--latency-ms models the network: each API call waits that long, calls wait side by side,
    and the control endpoints answer at once."""
    from concurrent.futures import ThreadPoolExecutor

    hold = 0.4
    with run_sandbox("--items", "10", "--latency-ms", str(int(hold * 1000))) as sb:
        started = time.monotonic()
        assert sb.stats()["calls"] == {}
        assert time.monotonic() - started < hold

        def timed_call(_: int) -> float:
            began = time.monotonic()
            assert "items_onsale_get_response" in listing(sb)
            return time.monotonic() - began

        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            each = list(pool.map(timed_call, range(4)))
        together = time.monotonic() - started
        assert min(each) >= hold
        assert together < 3 * hold  # four held calls, not one after another (that would be >= 4 x hold)
        assert sb.stats()["calls"] == {LISTING: 4}

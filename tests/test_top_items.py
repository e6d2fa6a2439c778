"""TOP detail records -> typed items, on records from fixture bodies shaped like the real API's."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shopcrawl.items import Sku
from shopcrawl.platforms import top
from shopcrawl.platforms.top.items import InvalidItem, item_from_raw, parse_properties_name

FIXTURES = Path(__file__).parent / "fixtures" / "top"


def records(name: str, method: str) -> list[dict]:
    body = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    payload, _ = top.unwrap(body, method)
    return top.unwrap_list(payload, "items", "item")


DETAIL = records("detail_wrapped.json", top.DETAIL_METHOD)
LISTED = {item["num_iid"]: item for item in records("listing_wrapped.json", top.LISTING_METHOD)}
FULL, NO_SKUS = DETAIL


def build(raw, listed=None):
    return item_from_raw(raw, listed or {}, platform="taobao", seller_id="demo", run_id="run-1")


def test_full_item_maps_every_field():
    item = build(FULL, LISTED[FULL["num_iid"]])
    assert (item.platform, item.seller_id, item.run_id) == ("taobao", "demo", "run-1")
    assert item.num_iid == 520813250866
    assert item.title == "南极人2026新款加厚连衣裙大码"
    assert (item.price, item.price_fen) == ("25.80", 2580)
    assert item.num == 832
    assert item.sold_quantity == 41  # only the listing has it
    assert item.approve_status == "onsale"
    assert item.nick == "demo" and item.cid == 50010850 and item.outer_id == "SC-250866"
    assert item.pic_url == "https://img.example.invalid/bao/uploaded/i3/520813250866.jpg"
    assert item.item_imgs == [
        "https://img.example.invalid/bao/uploaded/i3/520813250866.jpg",
        "https://img.example.invalid/bao/uploaded/i1/520813250866-1.jpg",
    ]
    assert item.desc is None


def test_times_are_timezone_aware_gmt8():
    item = build(FULL)
    assert item.modified == datetime(2026, 4, 2, 1, 15, 0, tzinfo=UTC)
    assert item.modified.utcoffset() == timedelta(hours=8)
    assert item.list_time == datetime(2026, 3, 20, 2, 0, 0, tzinfo=UTC)


def test_skus_keep_exact_fen_and_their_properties():
    skus = build(FULL).skus
    assert skus[0] == Sku(
        sku_id=4000000000001,
        properties_name="1627207:28341:颜色分类:黑色;20509:28314:尺码:XL",
        price="25.80",
        price_fen=2580,
        quantity=500,
        properties="1627207:28341;20509:28314",
        outer_id="黑色-XL",
        props={"颜色分类": "黑色", "尺码": "XL"},
    )
    assert [(s.sku_id, s.price_fen, s.quantity) for s in skus] == [
        (4000000000001, 2580, 500),
        (4000000000002, 3080, 332),
        (4000000000003, 3580, 0),
    ]


def test_unmapped_fields_are_kept_in_extras_as_sent():
    assert build(FULL).extras == {
        "props_name": "20000:3000001:品牌:南极人;1627207:28341:颜色分类:黑色",
        "seller_cids": "1200000350",
        "has_discount": True,
    }


def test_item_without_skus():
    item = build(NO_SKUS, LISTED[NO_SKUS["num_iid"]])
    assert item.skus == [] and item.num == 0
    assert (item.price, item.price_fen) == ("5.00", 500)
    assert item.list_time == datetime(2026, 1, 4, 16, 0, 1, tzinfo=UTC)  # from the listing
    assert item.item_imgs == ["https://img.example.invalid/bao/uploaded/i2/520813250901.jpg"]


def test_simplified_detail_record_maps_the_same():
    (simple,) = records("detail_simplified.json", top.DETAIL_METHOD)
    item = build(simple)
    assert [(s.sku_id, s.price_fen, s.props) for s in item.skus] == [
        (4000000000001, 2580, {"颜色分类": "黑色", "尺码": "XL"}),
        (4000000000002, 3080, {"颜色分类": "白色", "尺码": "L"}),
    ]
    assert item.item_imgs == ["https://img.example.invalid/bao/uploaded/i3/520813250866.jpg"]


def test_listing_fields_fill_what_the_detail_record_lacks():
    sparse = {"num_iid": 520813250867, "skus": None}
    item = build(sparse, LISTED[520813250867])
    assert (item.title, item.price_fen, item.num, item.sold_quantity) == ("苏泊尔不粘锅家用", 12900, 15, 0)
    assert item.modified == datetime(2026, 4, 2, 9, 15, 0, tzinfo=top.GMT8)
    assert item.extras == {}  # listing fields are not extras, and a null is not kept


def test_detail_overrides_the_listing():
    listed = {**LISTED[FULL["num_iid"]], "title": "old title", "price": "99.00", "num": 1}
    listed["modified"] = "2026-01-01 00:00:00"
    item = build(FULL, listed)
    assert (item.title, item.price, item.num) == ("南极人2026新款加厚连衣裙大码", "25.80", 832)
    assert item.modified == datetime(2026, 4, 2, 9, 15, 0, tzinfo=top.GMT8)


def test_a_null_in_the_detail_record_does_not_erase_the_listing_value():
    item = build({**FULL, "title": None}, LISTED[FULL["num_iid"]])
    assert item.title == "南极人2026新款加厚连衣裙大码"


def changed(path: str, value):
    """FULL with the field at ``path`` (``price`` or ``skus[1].price``) set, or removed for ...."""
    raw = copy.deepcopy(FULL)
    target = raw
    if path.startswith("skus["):
        index, path = int(path[5]), path[8:]
        target = raw["skus"]["sku"][index]
    if value is ...:
        del target[path]
    else:
        target[path] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("num", ..., "missing"),
        ("num", "", "missing"),
        ("num", 832.0, "not an integer: 832.0"),
        ("num", -1, "negative: -1"),
        ("num", "8.5", "not an integer: '8.5'"),
        ("num", "many", "not an integer: 'many'"),
        ("num", True, "not an integer: True"),
        ("num_iid", ..., "missing"),
        ("price", ..., "missing"),
        ("price", 25.8, "not a price string: 25.8"),
        ("price", 2580, "not a price string: 2580"),
        ("price", "25.801", "not a price in 元 with at most two decimals: '25.801'"),
        ("price", "-1.00", "not a price in 元 with at most two decimals: '-1.00'"),
        ("price", "abc", "not a price in 元 with at most two decimals: 'abc'"),
        ("modified", ..., "missing"),
        ("modified", "2026/04/02 09:15:00", "not a 'yyyy-MM-dd HH:mm:ss' time: '2026/04/02 09:15:00'"),
        ("list_time", "yesterday", "not a 'yyyy-MM-dd HH:mm:ss' time: 'yesterday'"),
        ("title", ..., "missing"),
        ("title", 12345, "not a string: 12345"),
        ("title", ["a"], "not a string: ['a']"),
        ("sold_quantity", -3, "negative: -3"),
        ("cid", "x", "not an integer: 'x'"),
        ("skus[1].sku_id", ..., "missing"),
        ("skus[1].quantity", ..., "missing"),
        ("skus[1].quantity", 3.0, "not an integer: 3.0"),
        ("skus[1].quantity", -5, "negative: -5"),
        ("skus[1].price", ..., "missing"),
        ("skus[1].price", 30.8, "not a price string: 30.8"),
        ("skus[2].price", "35.805", "not a price in 元 with at most two decimals: '35.805'"),
    ],
)
def test_invalid_records_name_the_field(path, value, reason):
    with pytest.raises(InvalidItem) as caught:
        build(changed(path, value))
    assert (caught.value.field, caught.value.reason) == (path, reason)
    assert str(caught.value) == f"{path}: {reason}"


def test_a_sku_that_is_not_an_object_is_named_by_index():
    raw = copy.deepcopy(FULL)
    raw["skus"]["sku"][2] = "4000000000003"
    with pytest.raises(InvalidItem) as caught:
        build(raw)
    assert (caught.value.field, caught.value.reason) == ("skus[2]", "not an object")


def test_an_invalid_listing_field_is_refused_even_if_the_detail_lacks_it():
    with pytest.raises(InvalidItem) as caught:
        build({"num_iid": 520813250867}, {**LISTED[520813250867], "price": "12.999"})
    assert caught.value.field == "price"


@pytest.mark.parametrize(
    ("text", "props"),
    [
        ("1627207:28341:颜色分类:黑色;20509:28314:尺码:XL", {"颜色分类": "黑色", "尺码": "XL"}),
        ("", {}),
        ("1627207:28341:颜色分类:黑色", {"颜色分类": "黑色"}),
        # escapes in names and values
        ("1:2:规格#cln#型号:A#scln#B", {"规格:型号": "A;B"}),
        ("1:2:尺码#scln#码数:XL#cln#加大;3:4:颜色:红", {"尺码;码数": "XL:加大", "颜色": "红"}),
        # an unescaped ':' in a value is kept
        ("1:2:时间:12:30", {"时间": "12:30"}),
        # malformed parts (too few pieces, empty parts) are skipped, the rest kept
        ("1627207:28341;20509:28314:尺码:XL", {"尺码": "XL"}),
        ("garbage;;20509:28314:尺码:XL;", {"尺码": "XL"}),
        ("1:2::", {"": ""}),
    ],
)
def test_parse_properties_name(text, props):
    assert parse_properties_name(text) == props


def test_a_repeated_property_name_keeps_the_last_value():
    assert parse_properties_name("1:2:颜色:红;1:3:颜色:蓝") == {"颜色": "蓝"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("skus", "garbage"),
        ("skus", {"sku": {"sku_id": 4000000000001, "quantity": 1, "price": "25.80"}}),
        ("item_imgs", {"item_img": "https://img.example.invalid/x.jpg"}),
    ],
    ids=["skus-str", "skus-single-object", "item_imgs-str"],
)
def test_a_list_field_of_another_shape_is_an_invalid_item(field, value):
    with pytest.raises(InvalidItem) as caught:
        build({**FULL, field: value})
    assert caught.value.field == field


@pytest.mark.parametrize("value", ["1_000", "８３２"])
def test_integer_fields_accept_only_plain_digits(value):
    with pytest.raises(InvalidItem) as caught:
        build({**FULL, "num": value})
    assert caught.value.field == "num"

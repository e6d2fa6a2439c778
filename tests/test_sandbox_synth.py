"""The sandbox's synthetic shop, rendered as the API would send it, read by the crawler's own code.

test_sandbox.py checks the shop over HTTP; these check, in-process, that every item the sandbox
means to be good passes the crawler's mapping and checks, and that each deliberately broken kind
is refused for the reason it was broken."""

from __future__ import annotations

import json

import pytest

from shopcrawl.money import to_fen
from shopcrawl.platforms import top
from shopcrawl.platforms.top.items import InvalidItem, item_from_raw, parse_properties_name
from shopcrawl.sandbox import render, synth
from shopcrawl.validation import check_item

COUNT = 300
INVALID = 12  # every kind twice


@pytest.fixture(scope="module")
def shop():
    return synth.generate(seed=11, count=COUNT, nick="demo", max_skus=5, invalid=INVALID)


def as_sent(item, fields, simplify):
    """One item record as it arrives: rendered, serialised, decoded."""
    return json.loads(render.dumps(render.item_dict(item, fields, simplify)))


def problem(item, simplify=False):
    raw = as_sent(item, top.DETAIL_FIELDS, simplify)
    listed = as_sent(item, top.LISTING_FIELDS, simplify)
    try:
        typed = item_from_raw(raw, listed, platform="taobao", seller_id="demo", run_id="r")
    except InvalidItem as exc:
        return exc.field, exc.reason
    return check_item(typed)


@pytest.mark.parametrize("simplify", [False, True], ids=["wrapped", "simplified"])
def test_every_good_item_passes_the_crawlers_checks(shop, simplify):
    good = [item for item in shop if not item.invalid]
    assert len(good) == COUNT - INVALID
    assert [problem(item, simplify) for item in good] == [None] * len(good)


EXPECTED = {
    "negative_price": ("price", "not a price in 元 with at most two decimals: '-1.00'"),
    "non_numeric_price": ("price", "not a price in 元 with at most two decimals: 'abc'"),
    "html_title": ("title", "contains markup"),
    "empty_title": ("title", "empty"),
    "num_mismatch": ("num", None),
    "duplicate_sku_id": ("skus.sku_id", None),
}


def test_each_broken_kind_is_refused_for_its_reason(shop):
    broken = [item for item in shop if item.invalid]
    assert sorted(item.invalid for item in broken) == sorted(synth.INVALID_KINDS * 2)
    for item in broken:
        field, reason = problem(item)
        expected_field, expected_reason = EXPECTED[item.invalid]
        assert field == expected_field, (item.invalid, field, reason)
        if expected_reason is not None:
            assert reason == expected_reason


def test_the_shops_own_totals_are_consistent(shop):
    for item in shop:
        if item.skus and not item.invalid:
            assert item.num == sum(sku.quantity for sku in item.skus)
            assert to_fen(item.price) == min(to_fen(sku.price) for sku in item.skus)
        assert item.list_time <= item.modified < synth.ANCHOR_TS
    ids = [item.num_iid for item in shop]
    assert len(set(ids)) == COUNT and all(len(str(i)) == 12 for i in ids)


def test_rendered_times_are_gmt8():
    assert render.format_time(synth.ANCHOR_TS) == "2026-10-01 00:00:00"
    assert top.parse_time(render.format_time(1704081600)).timestamp() == 1704081600


def test_an_item_without_skus_has_no_skus_key_in_either_shape(shop):
    item = next(i for i in shop if not i.skus)
    for simplify in (False, True):
        assert "skus" not in as_sent(item, ("num_iid", "sku", "item_img"), simplify)


def test_too_many_special_items_are_refused():
    with pytest.raises(ValueError, match=r"special items \(4\) exceed the item count \(3\)"):
        synth.generate(seed=1, count=3, nick="demo", max_skus=2, invalid=2, isv=1, vanish=1)


def test_hostile_items_get_operator_like_property_names():
    items = synth.generate(seed=2, count=40, nick="demo", max_skus=5, hostile=40)
    names = {
        name for item in items for sku in item.skus for name in parse_properties_name(sku.properties_name)
    }
    assert names == {"$inc", "x.y"}

"""check_item: what the type system cannot catch, on items mapped from an API-shaped fixture."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import pytest

from shopcrawl.platforms import top
from shopcrawl.platforms.top.items import item_from_raw
from shopcrawl.validation import check_item

FIXTURES = Path(__file__).parent / "fixtures" / "top"


def fixture_items():
    body = json.loads((FIXTURES / "detail_wrapped.json").read_text(encoding="utf-8"))
    payload, _ = top.unwrap(body, top.DETAIL_METHOD)
    raws = top.unwrap_list(payload, "items", "item")
    return [item_from_raw(raw, {}, platform="taobao", seller_id="demo", run_id="r") for raw in raws]


@pytest.fixture
def item():
    """Three SKUs: 500 + 332 + 0 = 832 in stock, priced 25.80 / 30.80 / 35.80; item price 25.80."""
    return fixture_items()[0]


def with_sku(item, index, **changes):
    skus = list(item.skus)
    skus[index] = dataclasses.replace(skus[index], **changes)
    return dataclasses.replace(item, skus=skus)


def test_good_items_pass():
    assert [check_item(item) for item in fixture_items()] == [None, None]


@pytest.mark.parametrize(
    ("title", "reason"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("连" * 201, "longer than 200 characters"),
        ("新款<script>alert(1)</script>", "contains markup"),
        ("新款</p>连衣裙", "contains markup"),
        ("新款&lt;b&gt;连衣裙", "contains markup"),
        ("新款&#34;连衣裙", "contains markup"),
        ("点这里 javascript:alert(1)", "contains markup"),
        ("新款\x00连衣裙", "contains control character U+0000"),
        ("新款\n连衣裙", "contains control character U+000A"),
        ("新款\u200b连衣裙", "contains control character U+200B"),
        ("æ–°æ¬¾\ufffd连衣裙", "contains the replacement character (bad decoding)"),
    ],
)
def test_bad_titles_are_refused(item, title, reason):
    assert check_item(dataclasses.replace(item, title=title)) == ("title", reason)


@pytest.mark.parametrize("title", ["连" * 200, "新款\t连衣裙", "3<5 & 5>3 加厚 100%纯棉", "ins风 A&B"])
def test_titles_that_look_odd_but_are_fine(item, title):
    assert check_item(dataclasses.replace(item, title=title)) is None


def test_a_price_above_the_maximum_is_refused():
    no_skus = fixture_items()[1]
    ok = dataclasses.replace(no_skus, price="100000000.00", price_fen=10_000_000_000)
    assert check_item(ok) is None
    too_high = dataclasses.replace(no_skus, price="100000000.01", price_fen=10_000_000_001)
    assert check_item(too_high) == ("price", "above 100000000 元")


def test_a_naive_modified_time_is_refused(item):
    naive = dataclasses.replace(item, modified=datetime(2026, 4, 2, 9, 15))
    assert check_item(naive) == ("modified", "not timezone-aware")


def test_a_duplicate_sku_id_is_refused(item):
    duplicate = with_sku(item, 2, sku_id=item.skus[0].sku_id)
    assert check_item(duplicate) == ("skus.sku_id", "duplicate sku_id 4000000000001")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1627207:28341:颜色分类:<b>黑色</b>", "contains markup"),
        ("1627207:28341:颜色分类:黑\x07色", "contains control character U+0007"),
        ("1627207:28341:é¢œè‰²\ufffd:黑色", "contains the replacement character (bad decoding)"),
    ],
)
def test_bad_sku_property_text_is_refused(item, text, reason):
    assert check_item(with_sku(item, 1, properties_name=text)) == ("skus.properties_name", reason)


def test_stock_must_be_the_sum_of_sku_quantities(item):
    assert check_item(dataclasses.replace(item, num=839)) == (
        "num",
        "stock 839 is not the sum of SKU quantities 832",
    )
    assert check_item(with_sku(item, 2, quantity=7)) == (
        "num",
        "stock 832 is not the sum of SKU quantities 839",
    )


@pytest.mark.parametrize(("price", "fen"), [("25.79", 2579), ("35.81", 3581)])
def test_item_price_must_lie_within_its_sku_prices(item, price, fen):
    assert check_item(dataclasses.replace(item, price=price, price_fen=fen)) == (
        "price",
        f"item price {price} is outside its SKU prices",
    )


@pytest.mark.parametrize(("price", "fen"), [("30.00", 3000), ("35.80", 3580)])
def test_item_price_between_or_at_the_sku_prices_passes(item, price, fen):
    assert check_item(dataclasses.replace(item, price=price, price_fen=fen)) is None


def test_an_item_without_skus_has_no_stock_or_price_rule():
    no_skus = fixture_items()[1]
    assert check_item(dataclasses.replace(no_skus, num=12345, price="0.01", price_fen=1)) is None


def test_rules_are_reported_in_order_title_first(item):
    broken = dataclasses.replace(with_sku(item, 2, sku_id=item.skus[0].sku_id), title="", num=1)
    assert check_item(broken) == ("title", "empty")

"""1688 ``productInfo`` -> ShopItem: exact prices, tiers, SKUs priced per SKU or per tier, times,
extras; every mapped fixture passes validation.check_item."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopcrawl.items import PriceTier
from shopcrawl.platforms.aop import protocol as aop
from shopcrawl.platforms.aop.dialect import AopDialect
from shopcrawl.platforms.base import InvalidItem
from shopcrawl.validation import check_item

FIXTURES = Path(__file__).parent / "fixtures" / "aop"


def record(name: str) -> dict:
    payload, error = aop.decode(200, (FIXTURES / name).read_bytes())
    assert error is None and payload is not None
    (info,) = AopDialect().detail_records(payload)
    return info


def to_item(raw, listed=None):
    return AopDialect().to_item(raw, listed or {}, seller_id="s1", run_id="run-1")


def test_quote_by_sku():
    item = to_item(record("detail_quote_sku.json"))
    assert (item.platform, item.seller_id, item.run_id) == ("1688", "s1", "run-1")
    assert (item.num_iid, item.title, item.num, item.cid) == (623456789012, "加厚连衣裙", 140, 50010850)
    assert item.modified == datetime(2026, 11, 1, 4, 0, tzinfo=UTC) and item.modified.tzinfo is not None
    assert item.list_time == datetime(2026, 9, 1, 0, 30, tzinfo=UTC)
    assert item.approve_status == "published"
    assert item.item_imgs == ["img/ibank/2026/123/456/1.jpg", "img/ibank/2026/123/456/2.jpg"]
    assert item.pic_url == "img/ibank/2026/123/456/1.jpg"
    assert item.price_tiers == [PriceTier(2, "12.5", 1250), PriceTier(10, "11.8", 1180)]  # sorted
    assert item.min_order_quantity == 2
    first, second = item.skus
    assert (first.sku_id, first.spec_id, first.price, first.price_fen, first.quantity) == (
        4234567890123, "b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6", "13.8", 1380, 120
    )  # fmt: skip
    assert (second.price, second.price_fen) == ("19.9", 1990)  # 19.9 is 1990 fen, not 1989
    assert first.props == {"颜色": "红色", "尺码": "L"} and first.outer_id == "RED-L"
    assert (item.price, item.price_fen) == ("13.8", 1380)  # the lowest SKU price
    assert item.sold_quantity is None
    assert item.extras["description"] == "<p>描述</p>" and item.extras["language"] == "zh_CN"
    assert item.extras["shippingInfo"] == {"freightTemplateID": 1, "unitWeight": "0.35"}  # exact
    assert item.extras["saleInfo"] == {"quoteType": 1, "unit": "件"}
    assert "skuInfos" not in item.extras and "productID" not in item.extras
    json.dumps(item.extras)
    assert check_item(item) is None


def test_quote_by_tier_prices_skus_from_the_first_tier():
    item = to_item(record("detail_quote_tier.json"))
    assert [(t.start_quantity, t.price, t.price_fen) for t in item.price_tiers] == [
        (3, "19.9", 1990), (30, "18", 1800), (300, "17.55", 1755)
    ]  # fmt: skip
    assert [(s.price, s.price_fen, s.quantity) for s in item.skus] == [("19.9", 1990, 5), ("19.9", 1990, 7)]
    assert (item.price, item.price_fen, item.num, item.min_order_quantity) == ("19.9", 1990, 12, 3)
    assert check_item(item) is None


def test_no_skus_priced_by_the_first_tier_and_14_digit_times():
    item = to_item(record("detail_no_skus.json"))
    assert (item.price, item.price_fen, item.skus, item.num) == ("258", 25800, [], 9)
    assert item.min_order_quantity is None and item.list_time is None and item.item_imgs == []
    assert item.modified == datetime(2026, 11, 3, 4, 0, tzinfo=UTC)
    assert check_item(item) is None


def test_listing_fields_fill_what_the_detail_lacks():
    raw = record("detail_no_skus.json")
    del raw["subject"]
    item = to_item(raw, {"subject": "列表标题", "createTime": "20260901083000000+0800"})
    assert item.title == "列表标题" and item.list_time is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("productID"), "productID"),
        (lambda r: r.update(subject=None), "subject"),
        (lambda r: r.update(modifyTime="2026-11-01 12:00:00"), "modifyTime"),
        (lambda r: r["saleInfo"].pop("amountOnSale"), "saleInfo.amountOnSale"),
        (lambda r: r["saleInfo"].update(amountOnSale=-1), "saleInfo.amountOnSale"),
        (lambda r: r["saleInfo"]["priceRanges"][0].update(price="abc"), "saleInfo.priceRanges[0].price"),
        (lambda r: r["saleInfo"]["priceRanges"][0].update(price=-1), "saleInfo.priceRanges[0].price"),
        (lambda r: r["saleInfo"]["priceRanges"][0].update(price=True), "saleInfo.priceRanges[0].price"),
        (
            lambda r: r["saleInfo"]["priceRanges"][0].update(price=aop.loads("1.999")),
            "saleInfo.priceRanges[0].price",
        ),
        (lambda r: r["saleInfo"].update(priceRanges=[]), "saleInfo.priceRanges"),
        (lambda r: r["saleInfo"].update(priceRanges={"a": 1}), "saleInfo.priceRanges"),
        (lambda r: r.update(saleInfo=[1]), "saleInfo"),
        (lambda r: r.update(skuInfos=[{"skuId": 1, "amountOnSale": 9}]), "skuInfos[0].price"),
        (lambda r: r.update(skuInfos=[{"skuId": 1.5, "amountOnSale": 9, "price": 1}]), "skuInfos[0].skuId"),
    ],
)
def test_bad_records_name_the_field(change, field):
    raw = record("detail_no_skus.json")
    change(raw)
    if field == "skuInfos[0].price":
        raw["saleInfo"]["priceRanges"] = []
    with pytest.raises(InvalidItem) as info:
        to_item(raw)
    assert info.value.field == field


def test_a_sku_stock_mismatch_fails_validation():
    raw = record("detail_quote_tier.json")
    raw["saleInfo"]["amountOnSale"] = 13
    assert check_item(to_item(raw)) == ("num", "stock 13 is not the sum of SKU quantities 12")

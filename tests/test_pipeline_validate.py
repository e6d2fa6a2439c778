"""ValidatePipeline through a crawler: typed items out, rejects with reasons, stats per field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from scrapy.utils.test import get_crawler

from shopcrawl.items import RawRecord, Reject, ShopItem
from shopcrawl.pipelines.validate import ValidatePipeline
from shopcrawl.platforms import top

FIXTURES = Path(__file__).parent / "fixtures" / "top"


def records(name: str, method: str) -> list[dict]:
    body = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    payload, _ = top.unwrap(body, method)
    return top.unwrap_list(payload, "items", "item")


FULL, NO_SKUS = records("detail_wrapped.json", top.DETAIL_METHOD)
LISTED = {item["num_iid"]: item for item in records("listing_wrapped.json", top.LISTING_METHOD)}


@pytest.fixture
def crawler():
    return get_crawler()


@pytest.fixture
def pipeline(crawler):
    return ValidatePipeline.from_crawler(crawler)


def raw_item(raw, listed=None) -> RawRecord:
    return RawRecord(
        platform="taobao",
        seller_id="demo",
        run_id="demo-20260402T011500Z-a1b2c3",
        num_iid=raw["num_iid"],
        raw=raw,
        listed=listed if listed is not None else LISTED.get(raw["num_iid"], {}),
    )


def shopcrawl_stats(crawler) -> dict:
    return {k: v for k, v in crawler.stats.get_stats().items() if k.startswith("shopcrawl/")}


def test_a_good_record_becomes_a_typed_item(crawler, pipeline):
    item = pipeline.process_item(raw_item(FULL))
    assert isinstance(item, ShopItem)
    assert (item.num_iid, item.price_fen, item.num, item.sold_quantity) == (520813250866, 2580, 832, 41)
    assert (item.seller_id, item.run_id) == ("demo", "demo-20260402T011500Z-a1b2c3")
    assert [sku.quantity for sku in item.skus] == [500, 332, 0]
    assert shopcrawl_stats(crawler) == {"shopcrawl/item/valid": 1}


def test_a_record_that_cannot_be_typed_becomes_a_reject_naming_the_field(crawler, pipeline):
    raw = copy.deepcopy(FULL)
    del raw["skus"]["sku"][1]["price"]
    listed = LISTED[FULL["num_iid"]]
    reject = pipeline.process_item(raw_item(raw, listed))
    assert reject == Reject(
        platform="taobao",
        seller_id="demo",
        reason="invalid/skus[1].price: missing",
        payload={"raw": raw, "listed": listed},
        num_iid=520813250866,
        run_id="demo-20260402T011500Z-a1b2c3",
    )
    json.dumps(reject.payload)  # kept as sent, so the store can write it
    assert shopcrawl_stats(crawler) == {
        "shopcrawl/item/invalid": 1,
        "shopcrawl/item/invalid/skus.price": 1,
    }


def test_a_typed_item_that_fails_a_check_becomes_a_reject(crawler, pipeline):
    reject = pipeline.process_item(raw_item({**FULL, "num": 839}))
    assert isinstance(reject, Reject)
    assert reject.reason == "invalid/num: stock 839 is not the sum of SKU quantities 832"
    assert reject.payload["raw"]["num"] == 839
    assert shopcrawl_stats(crawler) == {"shopcrawl/item/invalid": 1, "shopcrawl/item/invalid/num": 1}


def test_the_index_is_stripped_from_the_stat_but_kept_in_the_reason(crawler, pipeline):
    raw = copy.deepcopy(FULL)
    skus = raw["skus"]["sku"]
    skus.extend({**skus[0], "sku_id": 4000000000100 + n} for n in range(10))
    del skus[11]["quantity"]
    reject = pipeline.process_item(raw_item(raw))
    assert reject.reason == "invalid/skus[11].quantity: missing"
    assert shopcrawl_stats(crawler)["shopcrawl/item/invalid/skus.quantity"] == 1


def test_counts_add_up_over_a_batch(crawler, pipeline):
    batch = [
        raw_item(FULL),
        raw_item(NO_SKUS),
        raw_item({**NO_SKUS, "price": "5.001"}),
        raw_item({**FULL, "title": "<b>包邮</b>"}),
        raw_item({**NO_SKUS, "price": 5.0}),
    ]
    out = [pipeline.process_item(item) for item in batch]
    assert [type(item).__name__ for item in out] == ["ShopItem", "ShopItem", "Reject", "Reject", "Reject"]
    assert shopcrawl_stats(crawler) == {
        "shopcrawl/item/valid": 2,
        "shopcrawl/item/invalid": 3,
        "shopcrawl/item/invalid/price": 2,
        "shopcrawl/item/invalid/title": 1,
    }


@pytest.mark.parametrize(
    "item",
    [
        Reject("taobao", "demo", "detail/missing", {"num_iid": 1}, 1, "r"),
        {"num_iid": 1, "price": "not checked here"},
    ],
    ids=["reject", "dict"],
)
def test_other_objects_pass_through_untouched(crawler, pipeline, item):
    before = copy.deepcopy(item)
    assert pipeline.process_item(item) is item
    assert item == before
    assert shopcrawl_stats(crawler) == {}


def test_an_already_typed_item_passes_through(crawler, pipeline):
    typed = pipeline.process_item(raw_item(FULL))
    assert pipeline.process_item(typed) is typed
    assert shopcrawl_stats(crawler) == {"shopcrawl/item/valid": 1}


def test_a_skus_value_of_another_shape_becomes_a_reject(crawler, pipeline):
    reject = pipeline.process_item(raw_item({**FULL, "skus": {"sku": {"sku_id": 1}}}))
    assert isinstance(reject, Reject) and reject.reason.startswith("invalid/skus")
    assert shopcrawl_stats(crawler)["shopcrawl/item/invalid/skus"] == 1

"""What an incremental crawl compares: each dialect's listing fingerprint changes exactly when a listed
field that shows a change does (TOP: modified, price, num, sold_quantity; 1688: modifyTime,
referencePrice, saleInfo.amountOnSale; gateway: price, promotion_price, sales, quantity). And the
settings an incremental crawl reads: SHOPCRAWL_DETAIL_MAX_AGE and -a mode=."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from scrapy.settings import Settings

from shopcrawl.config import ConfigError, ShopcrawlConfig, crawl_mode
from shopcrawl.platforms import get_dialect
from shopcrawl.platforms.aop import protocol as aop
from shopcrawl.platforms.top import protocol as top

FIXTURES = Path(__file__).parent / "fixtures"


def _top_rows() -> list[dict]:
    payload = json.loads((FIXTURES / "top" / "listing_wrapped.json").read_text())
    return top.unwrap_list(payload["items_onsale_get_response"], "items", "item")


def _aop_rows() -> list[dict]:
    return aop.loads((FIXTURES / "aop" / "listing_page1.json").read_bytes())["result"]


def _gateway_rows() -> list[dict]:
    dialect = get_dialect("gateway", "taobao")
    payload, error = dialect.decode(
        "item_search_shop", 200, (FIXTURES / "gateway" / "listing_numbers.json").read_bytes()
    )
    assert error is None and payload is not None
    return payload["items"]["item"]


def _changed(dialect, row: dict, **changes) -> bool:
    return dialect.listing_fingerprint(row) != dialect.listing_fingerprint({**row, **changes})


@pytest.mark.parametrize(
    ("field", "value"),
    [("modified", "2026-04-02 09:15:01"), ("price", "25.90"), ("num", 831), ("sold_quantity", 42)],
)
def test_top_a_change_of_a_compared_field_changes_the_fingerprint(field, value):
    dialect, row = get_dialect("top", "taobao"), _top_rows()[0]
    assert _changed(dialect, row, **{field: value})


def test_top_other_fields_do_not_count_and_rows_differ():
    dialect = get_dialect("top", "taobao")
    first, second = _top_rows()[:2]
    assert not _changed(
        dialect, first, title="新标题", approve_status="onsale", list_time="2026-01-01 00:00:00"
    )
    assert dialect.listing_fingerprint(first) != dialect.listing_fingerprint(second)
    assert dialect.listing_fingerprint(dict(first)) == dialect.listing_fingerprint(first)  # stable


def test_1688_compares_modify_time_reference_price_and_stock_on_sale():
    dialect, row = get_dialect("1688", "1688"), _aop_rows()[1]
    assert _changed(dialect, row, modifyTime="20261102120001000+0800")
    assert _changed(dialect, row, referencePrice=Decimal("18.90"))
    assert _changed(dialect, row, saleInfo={"amountOnSale": 11})
    assert not _changed(dialect, row, subject="新标题", createTime="20200101000000000+0800")
    assert not _changed(dialect, row, saleInfo={"amountOnSale": 12, "unit": "件"})
    assert "12" in dialect.listing_fingerprint(row)  # the nested stock is in it


def test_gateway_compares_prices_sales_and_quantity_exactly():
    dialect, row = get_dialect("gateway", "taobao"), _gateway_rows()[0]
    for field, value in [("price", "199.80"), ("promotion_price", "189.9"), ("sales", 6), ("quantity", 11)]:
        assert _changed(dialect, row, **{field: value}), field
    assert not _changed(dialect, row, title="新标题", pic_url="https://img.example.invalid/x.jpg")
    # prices decode exactly: no float ever reaches the fingerprint
    assert "199.90" in dialect.listing_fingerprint(row) or "199.9" in dialect.listing_fingerprint(row)
    assert "e" not in dialect.listing_fingerprint({"price": Decimal("0.10")}).replace("null", "")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (None, 7 * 86400),
        ("", 7 * 86400),
        ("3600", 3600),
        ("12h", 43200),
        ("7d", 604800),
        ("30m", 1800),
        ("45s", 45),
        ("0", 0),
        ("1.5d", 129600),
        (" 2D ", 172800),
    ],
)
def test_detail_max_age_takes_seconds_or_a_unit(text, seconds):
    values = {} if text is None else {"SHOPCRAWL_DETAIL_MAX_AGE": text}
    assert ShopcrawlConfig.from_settings(Settings(values)).detail_max_age == seconds


@pytest.mark.parametrize("text", ["7 days", "d", "-1", "12x", "1e99"])
def test_a_bad_detail_max_age_is_named(text):
    with pytest.raises(ConfigError, match="SHOPCRAWL_DETAIL_MAX_AGE"):
        ShopcrawlConfig.from_settings(Settings({"SHOPCRAWL_DETAIL_MAX_AGE": text}))


def test_mode_is_incremental_by_default_and_checked():
    assert crawl_mode(None) == "incremental"
    assert crawl_mode(" FULL ") == "full"
    assert crawl_mode("incremental") == "incremental"
    with pytest.raises(ConfigError, match="mode= must be one of incremental, full"):
        crawl_mode("fast")

"""The CSV feed exporter: one row per item, nested values as readable JSON in their cell."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from scrapy.settings import Settings

from shopcrawl.exporters import CsvItemExporter
from shopcrawl.platforms import top
from shopcrawl.platforms.top.items import item_from_raw

FIXTURES = Path(__file__).parent / "fixtures" / "top"


def fixture_items():
    body = json.loads((FIXTURES / "detail_wrapped.json").read_text(encoding="utf-8"))
    payload, _ = top.unwrap(body, top.DETAIL_METHOD)
    return [
        item_from_raw(raw, {"sold_quantity": 41}, platform="taobao", seller_id="demo", run_id="run-1")
        for raw in top.unwrap_list(payload, "items", "item")
    ]


def export(items) -> str:
    out = io.BytesIO()
    exporter = CsvItemExporter(out)
    exporter.start_exporting()
    for item in items:
        exporter.export_item(item)
    exporter.finish_exporting()
    return out.getvalue().decode("utf-8")


def rows(items) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(export(items))))


def test_one_row_per_item_with_every_field_as_a_column():
    full, no_skus = rows(fixture_items())
    assert list(full) == [
        "platform",
        "seller_id",
        "num_iid",
        "title",
        "price",
        "price_fen",
        "num",
        "sold_quantity",
        "modified",
        "approve_status",
        "list_time",
        "nick",
        "cid",
        "outer_id",
        "pic_url",
        "item_imgs",
        "desc",
        "skus",
        "run_id",
        "extras",
        "price_tiers",
        "min_order_quantity",
    ]
    assert (full["num_iid"], full["title"], full["price"], full["price_fen"]) == (
        "520813250866",
        "南极人2026新款加厚连衣裙大码",
        "25.80",
        "2580",
    )
    assert full["modified"] == "2026-04-02 09:15:00+08:00"  # the time zone is kept
    assert (no_skus["num_iid"], no_skus["list_time"], no_skus["desc"]) == ("520813250901", "", "")


def test_skus_are_a_json_list_with_exact_prices():
    full, no_skus = rows(fixture_items())
    skus = json.loads(full["skus"])
    assert skus[1] == {
        "sku_id": 4000000000002,
        "properties_name": "1627207:28320:颜色分类:白色;20509:28313:尺码:L",
        "price": "30.80",
        "price_fen": 3080,
        "quantity": 332,
        "properties": "1627207:28320;20509:28313",
        "outer_id": "白色-L",
        "props": {"颜色分类": "白色", "尺码": "L"},
        "spec_id": "",
    }
    assert sum(sku["quantity"] for sku in skus) == int(full["num"])
    assert json.loads(no_skus["skus"]) == []


def test_images_and_extras_are_json():
    full, _ = rows(fixture_items())
    assert json.loads(full["item_imgs"]) == [
        "https://img.example.invalid/bao/uploaded/i3/520813250866.jpg",
        "https://img.example.invalid/bao/uploaded/i1/520813250866-1.jpg",
    ]
    assert json.loads(full["extras"]) == {
        "props_name": "20000:3000001:品牌:南极人;1627207:28341:颜色分类:黑色",
        "seller_cids": "1200000350",
        "has_discount": True,
    }


def test_chinese_text_in_json_cells_is_readable_not_escaped():
    text = export(fixture_items()[:1])
    assert "颜色分类" in text and "\\u" not in text


def test_csv_feeds_use_this_exporter():
    settings = Settings()
    settings.setmodule("shopcrawl.settings", priority="project")
    assert settings.getdict("FEED_EXPORTERS")["csv"] == "shopcrawl.exporters.CsvItemExporter"


def test_text_a_spreadsheet_would_evaluate_is_neutralised():
    item = fixture_items()[0]
    item.title = '=HYPERLINK("http://evil.example","点我")'
    item.outer_id = "@SUM(A1)"
    item.skus[0].properties_name = "+cmd|' /C calc'!A0"
    item.nick = "\tnick"
    (row, _) = rows([item, fixture_items()[1]])
    assert row["title"] == "'" + item.title and row["outer_id"] == "'@SUM(A1)" and row["nick"] == "'\tnick"
    assert json.loads(row["skus"])[0]["properties_name"] == item.skus[0].properties_name  # JSON cell: "[..."
    assert row["price"] == item.price and row["num_iid"] == str(item.num_iid)  # plain values untouched

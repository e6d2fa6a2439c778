"""CSV feed export: nested values (SKUs, image lists) become JSON text in their cell, and no text cell
can be read as a formula by a spreadsheet (shop data is hostile: a title may be ``=HYPERLINK(...)``)."""

from __future__ import annotations

import json
from typing import Any

from itemadapter import ItemAdapter, is_item
from scrapy.exporters import CsvItemExporter as _CsvItemExporter

from shopcrawl.safetext import neutralise

__all__ = ["CsvItemExporter", "neutralise"]


def _plain(value: Any) -> Any:
    if is_item(value):
        return {k: _plain(v) for k, v in ItemAdapter(value).items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class CsvItemExporter(_CsvItemExporter):
    def serialize_field(self, field: Any, name: str, value: Any) -> Any:
        if isinstance(value, list | dict):
            return neutralise(json.dumps(_plain(value), ensure_ascii=False, default=str))
        return neutralise(super().serialize_field(field, name, value))

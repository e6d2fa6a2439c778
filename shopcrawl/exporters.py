"""CSV feed export: nested values (SKUs, image lists) become JSON text in their cell."""

from __future__ import annotations

import json
from typing import Any

from itemadapter import ItemAdapter, is_item
from scrapy.exporters import CsvItemExporter as _CsvItemExporter


def _plain(value: Any) -> Any:
    if is_item(value):
        return {k: _plain(v) for k, v in ItemAdapter(value).items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class CsvItemExporter(_CsvItemExporter):
    def serialize_field(self, field: Any, name: str, value: Any) -> Any:
        if isinstance(value, list | dict):
            return json.dumps(_plain(value), ensure_ascii=False, default=str)
        return super().serialize_field(field, name, value)

"""Rendering items and TOP envelopes as JSON (wrapped or ``simplify=true``) and XML (§1.4).

The JSON of one item for one ``fields`` list is computed once and cached until the shop changes, so a
200-item page is a join of cached strings. Choices not fixed by the protocol doc [unconfirmed]:

- Keys of an item follow the order of the requested ``fields``; ``sku`` gives ``skus``, ``item_img``
  gives ``item_imgs``; an item without SKUs has no ``skus`` key.
- ``items`` is omitted whenever the returned list is empty (total 0, a page past the end, or a detail
  call whose ids are all unknown), as §1.4 records for total 0.
- ``request_id`` is the last key of the payload; with ``simplify=true`` it stays in the (unwrapped) root.
- XML: ``<?xml version="1.0" encoding="utf-8" ?>``, then the wrapped JSON structure as elements
  (a list repeats its singular element name); booleans are ``true``/``false``; no attributes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

from shopcrawl.platforms.top import TIME_FORMAT, response_root

from .synth import Item, Sku

# The fields taobao.items.onsale.get accepts (§1.7); the detail call accepts these and a few more.
LISTING_FIELDS = frozenset(
    {
        "approve_status",
        "num_iid",
        "title",
        "nick",
        "type",
        "cid",
        "pic_url",
        "num",
        "props",
        "valid_thru",
        "list_time",
        "price",
        "has_discount",
        "has_invoice",
        "has_warranty",
        "has_showcase",
        "modified",
        "delist_time",
        "postage_id",
        "seller_cids",
        "outer_id",
        "sold_quantity",
    }
)
DETAIL_FIELDS = LISTING_FIELDS | {"props_name", "created", "desc", "detail_url", "sku", "item_img"}
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8" ?>'


_GMT8_OFFSET = 8 * 3600  # China has no daylight saving time


@lru_cache(maxsize=65536)
def format_time(epoch: int) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in GMT+8 (same result as ``top.format_timestamp``, faster)."""
    return time.strftime(TIME_FORMAT, time.gmtime(epoch + _GMT8_OFFSET))


def _props_name(item: Item) -> str:
    names = {"20000": "品牌", "1627207": "颜色分类"}
    parts = []
    for pair in item.props.split(";"):
        pid, _, vid = pair.partition(":")
        parts.append(f"{pid}:{vid}:{names.get(pid, pid)}:{vid}")
    return ";".join(parts)


_SCALARS: dict[str, Callable[[Item], Any]] = {
    "num_iid": lambda i: i.num_iid,
    "title": lambda i: i.title,
    "nick": lambda i: i.nick,
    "type": lambda i: "fixed",
    "cid": lambda i: i.cid,
    "seller_cids": lambda i: i.seller_cids,
    "props": lambda i: i.props,
    "props_name": _props_name,
    "pic_url": lambda i: i.pic_url,
    "num": lambda i: i.num,
    "price": lambda i: i.price,
    "approve_status": lambda i: "onsale" if i.onsale else "instock",
    "list_time": lambda i: format_time(i.list_time),
    "delist_time": lambda i: format_time(i.delist_time),
    "modified": lambda i: format_time(i.modified),
    "created": lambda i: format_time(i.created),
    "sold_quantity": lambda i: i.sold_quantity,
    "outer_id": lambda i: i.outer_id,
    "valid_thru": lambda i: i.valid_thru,
    "has_discount": lambda i: i.has_discount,
    "has_invoice": lambda i: False,
    "has_warranty": lambda i: False,
    "has_showcase": lambda i: i.has_showcase,
    "postage_id": lambda i: i.postage_id,
    "detail_url": lambda i: f"https://item.example.invalid/item.htm?id={i.num_iid}",
    "desc": lambda i: (
        f'<p>{escape(i.title)}</p><p><img src="https://img.example.invalid/desc/{i.num_iid}.jpg"/></p>'
    ),
}


def sku_record(sku: Sku) -> dict[str, Any]:
    return {
        "sku_id": sku.sku_id,
        "properties": sku.properties,
        "properties_name": sku.properties_name,
        "price": sku.price,
        "quantity": sku.quantity,
        "outer_id": sku.outer_id,
        "modified": format_time(sku.modified),
    }


def image_records(item: Item) -> list[dict[str, Any]]:
    return [
        {"id": item.num_iid % 10_000_000 * 10 + position, "url": url, "position": position}
        for position, url in enumerate(item.images)
    ]


def item_dict(item: Item, fields: Iterable[str], simplify: bool) -> dict[str, Any]:
    """The API's view of ``item`` for these (already validated) field names."""
    out: dict[str, Any] = {}
    for name in fields:
        if name == "sku":
            if item.skus:
                skus = [sku_record(sku) for sku in item.skus]
                out["skus"] = skus if simplify else {"sku": skus}
        elif name == "item_img":
            images = image_records(item)
            out["item_imgs"] = images if simplify else {"item_img": images}
        else:
            out[name] = _SCALARS[name](item)
    return out


def item_record(item: Item) -> dict[str, Any]:
    """Everything about ``item`` (the ``/_sandbox/shop`` view), lists as plain arrays."""
    record = {name: getter(item) for name, getter in _SCALARS.items() if name not in ("desc", "props_name")}
    record["skus"] = [sku_record(sku) for sku in item.skus]
    record["item_imgs"] = image_records(item)
    return record


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _scalar_json(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _ENCODE(value)


class ItemJsonCache:
    """Serialized items, emptied whenever the shop version changes.

    Two levels: a JSON fragment (``"title":"..."``) per scalar field and item, built for every item
    of the shop the first time the field is asked for (~30 ms per field for 25,000 items); and the
    whole item's JSON per (fields, simplify), joined from those fragments. ``sku``/``item_img``
    fragments depend on ``simplify`` and are built per item on demand.
    """

    def __init__(self, all_items: Callable[[], Iterable[Item]]) -> None:
        self._all_items = all_items
        self._version = -1
        self._columns: dict[tuple[str, bool], dict[int, str]] = {}
        self._by_shape: dict[tuple[tuple[str, ...], bool], dict[int, str]] = {}

    def sync(self, version: int) -> None:
        if version != self._version:
            self._columns.clear()
            self._by_shape.clear()
            self._version = version

    def _column(self, name: str, simplify: bool) -> dict[int, str]:
        key = (name, simplify and name in ("sku", "item_img"))
        column = self._columns.get(key)
        if column is None:
            column = self._columns[key] = {}
            if name in _SCALARS:
                prefix, getter = f'"{name}":', _SCALARS[name]
                column.update(
                    (item.num_iid, prefix + _scalar_json(getter(item))) for item in self._all_items()
                )
        return column

    def items_json(self, items: Sequence[Item], fields: tuple[str, ...], simplify: bool) -> list[str]:
        shape = (fields, simplify)
        cache = self._by_shape.get(shape)
        if cache is None:
            if len(self._by_shape) >= 64:
                self._by_shape.clear()
            cache = self._by_shape[shape] = {}
        keys = [item.num_iid for item in items]
        todo = [item for item in items if item.num_iid not in cache]
        if todo:  # build the missing items column by column, in C-level loops
            todo_keys = [item.num_iid for item in todo]
            columns = []
            for name in fields:
                column = self._column(name, simplify)
                if name not in _SCALARS:  # sku / item_img: per item, on demand
                    for item in todo:
                        if item.num_iid not in column:
                            column[item.num_iid] = dumps(item_dict(item, (name,), simplify))[1:-1]
                columns.append(list(map(column.__getitem__, todo_keys)))
            rows = ["{" + ",".join(filter(None, parts)) + "}" for parts in zip(*columns, strict=True)]
            cache.update(zip(todo_keys, rows, strict=True))
        return list(map(cache.__getitem__, keys))


def json_items_body(
    method: str, simplify: bool, items_json: list[str], total: int | None, request_id: str
) -> bytes:
    parts = [] if total is None else [f'"total_results":{total}']
    if items_json:
        array = "[" + ",".join(items_json) + "]"
        parts.append('"items":' + (array if simplify else '{"item":' + array + "}"))
    parts.append(f'"request_id":"{request_id}"')
    payload = "{" + ",".join(parts) + "}"
    if not simplify:
        payload = '{"' + response_root(method) + '":' + payload + "}"
    return payload.encode("utf-8")


def xml_items_body(method: str, items: list[dict[str, Any]], total: int | None, request_id: str) -> bytes:
    payload: dict[str, Any] = {} if total is None else {"total_results": total}
    if items:
        payload["items"] = {"item": items}
    payload["request_id"] = request_id
    return (XML_DECLARATION + xml_element(response_root(method), payload)).encode("utf-8")


def error_body(error: dict[str, Any], as_json: bool) -> bytes:
    if as_json:
        return dumps({"error_response": error}).encode("utf-8")
    return (XML_DECLARATION + xml_element("error_response", error)).encode("utf-8")


def xml_element(name: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(xml_element(key, child) for key, child in value.items())
    elif isinstance(value, list):
        return "".join(xml_element(name, child) for child in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"

"""Queued requests as JSON, never pickle: a payload is data, and nothing in it is ever executed.

A payload is ``{"v": 1, "url", "method", "headers", "body_b64", "meta", "priority", "dont_filter",
"callback", "flags"}``. Decoding refuses anything else: unknown or missing keys, a request class
(``_class``), a callback that is not one of the spider's API callbacks, non-JSON bytes (a pickle),
a URL that is not http(s). Refusals raise :class:`PayloadRefused` with the reason.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from scrapy import Request, Spider

VERSION = 1
CALLBACKS = frozenset({"parse_listing", "parse_listing_page", "parse_detail"})
_KEYS = frozenset(
    {"v", "url", "method", "headers", "body_b64", "meta", "priority", "dont_filter", "callback", "flags"}
)
# Meta keys that only make sense inside one process; they are not queued.
_LOCAL_META = frozenset({"download_slot", "download_latency", "_lease"})


class PayloadRefused(ValueError):
    pass


def encode(request: Request, spider: Spider) -> str:
    callback = getattr(request.callback, "__name__", None)
    if callback not in CALLBACKS or getattr(spider, callback) != request.callback:
        raise ValueError(f"only the spider's API callbacks can be queued, not {request.callback!r}")
    meta = {k: v for k, v in request.meta.items() if k not in _LOCAL_META}
    payload = {
        "v": VERSION,
        "url": request.url,
        "method": request.method,
        "headers": {
            k.decode("latin-1"): [v.decode("latin-1") for v in values]
            for k, values in request.headers.items()
        },
        "body_b64": base64.b64encode(request.body).decode("ascii"),
        "meta": meta,
        "priority": request.priority,
        "dont_filter": request.dont_filter,
        "callback": callback,
        "flags": list(request.flags),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise PayloadRefused(f"{what} has the wrong type ({type(value).__name__})")
    return value


def decode(data: bytes | str, spider: Spider) -> Request:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise PayloadRefused("not a JSON request payload (pickle or garbage?)") from None
    _expect(payload, dict, "the payload")
    if set(payload) != _KEYS:
        extra, missing = set(payload) - _KEYS, _KEYS - set(payload)
        raise PayloadRefused(f"unexpected keys {sorted(extra)} / missing keys {sorted(missing)}")
    if payload["v"] != VERSION:
        raise PayloadRefused(f"unknown payload version {payload['v']!r}")
    url = _expect(payload["url"], str, "url")
    if not url.startswith(("http://", "https://")):
        raise PayloadRefused("url is not http(s)")
    callback = _expect(payload["callback"], str, "callback")
    if callback not in CALLBACKS:
        raise PayloadRefused(f"callback {callback!r} is not an API callback")
    headers = _expect(payload["headers"], dict, "headers")
    for name, values in headers.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PayloadRefused(f"header {name!r} is not a list of strings")
    try:
        body = base64.b64decode(_expect(payload["body_b64"], str, "body_b64"), validate=True)
    except ValueError:
        raise PayloadRefused("body_b64 is not base64") from None
    return Request(
        url,
        method=_expect(payload["method"], str, "method"),
        headers={k: [v.encode("latin-1") for v in vs] for k, vs in headers.items()},
        body=body,
        meta=_expect(payload["meta"], dict, "meta"),
        priority=_expect(payload["priority"], int, "priority"),
        dont_filter=_expect(payload["dont_filter"], bool, "dont_filter"),
        callback=getattr(spider, callback),
        flags=[str(f) for f in _expect(payload["flags"], list, "flags")],
    )


# scrapy-redis's queue base class asks its serializer for dumps/loads; LeasedQueue encodes and
# decodes whole requests with encode/decode above, so these only ever see plain JSON.
def dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def loads(data: bytes | str) -> Any:
    return json.loads(data)

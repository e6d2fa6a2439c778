"""The seed article's client (shared/seed-article.md, its first code block), made to run.

Its shape is kept: a sequential ``requests`` loop, one call at a time, a new connection each call
(``requests.get``), ``page_size=100``, listing pages until the first empty one, every item appended
to a list, then one detail call per item; no threads, no retries, no batching, nothing stored.

Where it deviates from the article, and why (the sandbox checks what TOP checks, so the article's
code as printed gets only error answers, which it would read as an empty shop):

- The listing method: the article calls ``taobao.items.seller.list``, which does not exist; the
  listing of one's own shop is ``taobao.items.onsale.get`` (its ``seller_id`` argument stays unused,
  as in the article: the session names the seller).
- The signature: the article joins ``k1v1&k2v2``; TOP's md5 signature is
  ``md5(secret + k1v1k2v2... + secret)`` over the sorted parameters, no separator, upper-case hex.
- The answer: the article reads ``data['items']['item']``; TOP wraps it in
  ``items_onsale_get_response``, so the client looks inside that.
- The detail call: the article names ``1688.item.get`` with a ``num_iid``; on TOP the item detail
  call is ``taobao.items.seller.list.get`` with ``num_iids`` = that one id.
- ``--limit N`` stops the listing once N items are listed (for a shorter run); the article has none.

The timestamp stays the article's epoch milliseconds (the sandbox accepts them) and no
``sign_method`` is sent (md5, TOP's default).

Usage: python -m benchmarks.baselines.seed_client --url URL --seller demo [--limit N]
prints a JSON summary: calls, listing and detail calls, items listed, details fetched, seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import requests

APP_KEY = "sandbox-app-key"
APP_SECRET = "sandbox-app-secret"
SESSION = "sandbox-session"
CALLS = {"listing": 0, "detail": 0, "errors": 0}


def sign(params: dict[str, object], secret: str) -> str:
    param_str = "".join(f"{k}{v}" for k, v in sorted(params.items()))
    return hashlib.md5(f"{secret}{param_str}{secret}".encode()).hexdigest().upper()


def call(url: str, method: str, **business: object) -> dict[str, object]:
    params: dict[str, object] = {
        "method": method,
        "app_key": APP_KEY,
        "session": SESSION,  # 需卖家授权获取
        "timestamp": str(int(time.time() * 1000)),
        "v": "2.0",
        "format": "json",
        **business,
    }
    params["sign"] = sign(params, APP_SECRET)
    response = requests.get(url, params=params)
    data: dict[str, object] = response.json()
    if "error_response" in data:
        CALLS["errors"] += 1
    return data


def get_seller_items(url: str, seller_id: str, page_no: int = 1, page_size: int = 100) -> dict[str, object]:
    CALLS["listing"] += 1
    fields = "num_iid,title,price,pic_url"
    return call(url, "taobao.items.onsale.get", fields=fields, page_no=page_no, page_size=page_size)


def get_item(url: str, num_iid: object) -> dict[str, object]:
    CALLS["detail"] += 1
    fields = "num_iid,title,price,num,sku,item_img"
    return call(url, "taobao.items.seller.list.get", fields=fields, num_iids=num_iid)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="TOP router URL (the sandbox's first line)")
    parser.add_argument("--seller", default="demo")
    parser.add_argument("--limit", type=int, default=0, help="stop listing once this many items are listed")
    args = parser.parse_args()
    started = time.perf_counter()
    # 分页获取全店商品
    all_items: list[dict[str, object]] = []
    page = 1
    while True:
        data = get_seller_items(args.url, args.seller, page_no=page)
        answer = data.get("items_onsale_get_response", {})
        items = answer.get("items", {}).get("item", []) if isinstance(answer, dict) else []
        if not items:
            break
        all_items.extend(items)
        page += 1
        if args.limit and len(all_items) >= args.limit:
            del all_items[args.limit :]
            break
    details = []
    for item in all_items:
        data = get_item(args.url, item["num_iid"])
        answer = data.get("items_seller_list_get_response", {})
        details.extend(answer.get("items", {}).get("item", []) if isinstance(answer, dict) else [])
    summary = {
        "calls": CALLS["listing"] + CALLS["detail"],
        "listing_calls": CALLS["listing"],
        "detail_calls": CALLS["detail"],
        "errors": CALLS["errors"],
        "items": len(all_items),
        "details": len(details),
        "seconds": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(summary))
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""A plain Scrapy spider of a shop, as a user would write it from the Scrapy docs.

Listing pages of 100 (``taobao.items.onsale.get``) followed one after another until an empty page,
one detail request (``taobao.items.seller.list.get``, one ``num_iids``) per listed item, Scrapy's
default settings (concurrency included: 16 requests, 8 per domain), and the docs' ``MongoPipeline``
("Write items to MongoDB" in the Item Pipeline page): ``open_spider`` makes a ``MongoClient``,
``process_item`` does ``insert_one(ItemAdapter(item).asdict())`` for each item, on the reactor thread.
The pipeline's methods take no ``spider`` argument, as Scrapy 2.14+ asks. Requests are signed in
the spider when they are made (TOP md5, ``yyyy-MM-dd HH:mm:ss`` GMT+8 timestamps), as a user who
has read the API docs would; no retries beyond Scrapy's default ones, no batching.

Usage: python -m benchmarks.baselines.plain_scrapy --url URL --mongo-uri URI --database DB
       [--log-level WARNING]; prints a JSON summary (items scraped, responses, seconds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pymongo
import scrapy
from itemadapter import ItemAdapter
from scrapy.crawler import CrawlerProcess

APP_KEY = "sandbox-app-key"
APP_SECRET = "sandbox-app-secret"
SESSION = "sandbox-session"
GMT8 = timezone(timedelta(hours=8))


class MongoPipeline:
    collection_name = "scrapy_items"

    def __init__(self, mongo_uri: str, mongo_db: str) -> None:
        self.mongo_uri = mongo_uri
        self.mongo_db = mongo_db

    @classmethod
    def from_crawler(cls, crawler: Any) -> MongoPipeline:
        return cls(
            mongo_uri=crawler.settings.get("MONGO_URI"),
            mongo_db=crawler.settings.get("MONGO_DATABASE", "items"),
        )

    def open_spider(self) -> None:
        self.client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(self.mongo_uri)
        self.db = self.client[self.mongo_db]

    def close_spider(self) -> None:
        self.client.close()

    def process_item(self, item: Any) -> Any:
        self.db[self.collection_name].insert_one(ItemAdapter(item).asdict())
        return item


class ShopSpider(scrapy.Spider):
    name = "shop_items"
    page_size = 100

    def __init__(self, api_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_url = api_url

    def signed_url(self, method: str, **business: object) -> str:
        params = {
            "method": method,
            "app_key": APP_KEY,
            "session": SESSION,
            "timestamp": datetime.now(GMT8).strftime("%Y-%m-%d %H:%M:%S"),
            "v": "2.0",
            "format": "json",
            "sign_method": "md5",
            **{k: str(v) for k, v in business.items()},
        }
        text = "".join(f"{k}{v}" for k, v in sorted(params.items()))
        params["sign"] = hashlib.md5(f"{APP_SECRET}{text}{APP_SECRET}".encode()).hexdigest().upper()
        return f"{self.api_url}?{urlencode(params)}"

    def listing_request(self, page_no: int) -> scrapy.Request:
        url = self.signed_url(
            "taobao.items.onsale.get", fields="num_iid,title,price", page_no=page_no, page_size=self.page_size
        )
        return scrapy.Request(url, callback=self.parse_listing, cb_kwargs={"page_no": page_no})

    async def start(self) -> Any:
        yield self.listing_request(1)

    def parse_listing(self, response: scrapy.http.TextResponse, page_no: int) -> Any:
        items = response.json().get("items_onsale_get_response", {}).get("items", {}).get("item", [])
        if not items:
            return
        for item in items:
            url = self.signed_url(
                "taobao.items.seller.list.get",
                fields="num_iid,title,price,num,modified,sku,item_img",
                num_iids=item["num_iid"],
            )
            yield scrapy.Request(url, callback=self.parse_detail)
        yield self.listing_request(page_no + 1)

    def parse_detail(self, response: scrapy.http.TextResponse) -> Any:
        yield from response.json()["items_seller_list_get_response"]["items"]["item"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="TOP router URL (the sandbox's first line)")
    parser.add_argument("--mongo-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    settings = {
        "ITEM_PIPELINES": {MongoPipeline: 300},
        "MONGO_URI": args.mongo_uri,
        "MONGO_DATABASE": args.database,
        "LOG_LEVEL": args.log_level,
    }
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(ShopSpider)
    started = time.perf_counter()
    process.crawl(crawler, api_url=args.url)
    process.start()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    summary = {
        "items": stats.get("item_scraped_count", 0),
        "responses": stats.get("response_received_count", 0),
        "finish_reason": stats.get("finish_reason"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(summary))
    return 0 if summary["finish_reason"] == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())

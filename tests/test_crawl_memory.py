"""End to end: what a crawl holds in memory does not grow with the shop. Detail calls go before
listing pages, so the queue holds about CONCURRENT_REQUESTS listing pages' worth of them, not every
detail call of the shop."""

from __future__ import annotations

import re

from tests.conftest import crawl

AOP = ("-a", "api=1688")
CONCURRENT_REQUESTS = 16  # shopcrawl.settings
AOP_PAGE = 20  # alibaba.product.list.get serves 20 a page, and alibaba.product.get details one each


def _stat(log: str, key: str) -> int:
    found = re.search(rf"'{re.escape(key)}': (\d+)", log)
    assert found, f"{key} not in the crawl's stats"
    return int(found.group(1))


def test_the_detail_backlog_stays_bounded_whatever_the_shop_size(sandbox_factory, tmp_path):
    """3,000 items through 1688: one detail call an item. With the listing first, all ~2,980 would
    wait in the queue at once; detail calls first keep at most a downloader's worth of listing
    pages' details there."""
    sandbox = sandbox_factory("--items", "3000", "--seed", "4")
    result = crawl(sandbox.base + "/openapi", tmp_path, extra_args=AOP)
    assert result.returncode == 0, result.stderr
    assert result.query("SELECT status, items_listed FROM runs") == [("complete", 3000)]
    backlog = _stat(result.log, "shopcrawl/detail/backlog_max")
    assert 0 < backlog <= CONCURRENT_REQUESTS * AOP_PAGE

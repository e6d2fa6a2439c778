"""StorePipeline with a real SQLite file: batching, rejects, a write that fails, the flush at close.

The pipeline writes in a worker thread and flushes on a timer, so the tests drive the asyncio
reactor (see ``run_in_reactor`` in test_extension_run.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from scrapy import signals
from scrapy.exceptions import DropItem

from shopcrawl.items import Reject
from shopcrawl.pipelines.store import StorePipeline
from shopcrawl.runs import FATAL_STAT
from tests.test_extension_run import make_crawler, reactor_shutdown, read_store, run_in_reactor  # noqa: F401
from tests.test_store_sqlite import make_item

RUN = "run-new"


class Closed(list):
    """The reasons the spider was closed with (the spider_closed signal)."""

    def spider_closed(self, reason):
        self.append(reason)


def open_pipeline(tmp_path, *, engine=False, **settings):
    crawler = make_crawler(tmp_path, run_id=RUN, **settings)
    crawler.closed = Closed()
    if engine:  # a real engine with the spider open, as during a crawl: a fatal error closes it
        crawler.engine = crawler._create_engine()
        crawler.signals.connect(crawler.closed.spider_closed, signal=signals.spider_closed)
        run_in_reactor(crawler.engine.open_spider_async)
    pipeline = StorePipeline.from_crawler(crawler)
    run_in_reactor(pipeline.open_spider)
    return crawler, pipeline


def wait_closed(crawler) -> list[str]:
    """The reasons the engine closed the spider with, once it has."""

    async def until_closed():
        while not crawler.closed:
            await asyncio.sleep(0.01)

    run_in_reactor(until_closed)
    return crawler.closed


def close(pipeline):
    run_in_reactor(pipeline.close_spider)
    run_in_reactor(lambda: pipeline.lifecycle.spider_closed("finished"))


def process(pipeline, item):
    async def go():
        try:
            return await pipeline.process_item(item)
        except DropItem as exc:
            return exc

    return run_in_reactor(go)


def stored_ids(tmp_path) -> list[int]:
    store = read_store(tmp_path)
    try:
        return sorted(item.num_iid for item in store.iter_items("s1"))
    finally:
        store.close()


def reject(num_iid, reason="invalid/price: not a price"):
    return Reject("taobao", "s1", reason, {"raw": {"num_iid": num_iid}}, num_iid, RUN)


def test_items_wait_for_a_full_batch_then_go_out_in_one_write(tmp_path):
    crawler, pipeline = open_pipeline(tmp_path, SHOPCRAWL_STORE_BATCH=3)
    items = [make_item(n, run_id=RUN) for n in (1, 2, 3)]
    assert process(pipeline, items[0]) is items[0]
    assert process(pipeline, items[1]) is items[1]
    assert stored_ids(tmp_path) == []
    assert crawler.stats.get_value("shopcrawl/store/flushes") is None
    assert process(pipeline, items[2]) is items[2]
    assert stored_ids(tmp_path) == [1, 2, 3]
    stats = crawler.stats
    assert (stats.get_value("shopcrawl/store/items"), stats.get_value("shopcrawl/store/flushes")) == (3, 1)
    close(pipeline)
    assert stats.get_value("shopcrawl/store/flushes") == 1  # nothing left to write at close


def test_a_reject_is_kept_in_the_store_and_dropped_from_the_crawl(tmp_path):
    crawler, pipeline = open_pipeline(tmp_path, SHOPCRAWL_STORE_BATCH=2)
    bad = reject(7)
    dropped = process(pipeline, bad)
    assert isinstance(dropped, DropItem)
    assert str(dropped) == "rejected (invalid/price: not a price); kept in the store's rejects"
    process(pipeline, make_item(1, run_id=RUN))
    store = read_store(tmp_path)
    assert store.rejects_for_run(RUN) == [bad]
    assert [o.num_iid for o in store.observations_for_run(RUN)] == [1, 1]  # two SKUs
    store.close()
    assert crawler.stats.get_value("shopcrawl/store/rejects") == 1
    close(pipeline)


def test_other_objects_pass_through_and_are_not_stored(tmp_path):
    crawler, pipeline = open_pipeline(tmp_path, SHOPCRAWL_STORE_BATCH=1)
    other = {"num_iid": 1}
    assert process(pipeline, other) is other
    close(pipeline)
    assert stored_ids(tmp_path) == []
    assert crawler.stats.get_value("shopcrawl/store/flushes") is None


def test_close_flushes_what_is_left(tmp_path):
    crawler, pipeline = open_pipeline(tmp_path, SHOPCRAWL_STORE_BATCH=100)
    for n in (1, 2):
        process(pipeline, make_item(n, run_id=RUN))
    process(pipeline, reject(3))
    assert stored_ids(tmp_path) == []
    close(pipeline)
    assert stored_ids(tmp_path) == [1, 2]
    stats = crawler.stats
    assert [stats.get_value(f"shopcrawl/store/{k}") for k in ("items", "rejects", "flushes")] == [2, 1, 1]
    assert read_store(tmp_path).get_run(RUN).items_rejected == 1


def test_a_partial_batch_is_written_after_the_flush_interval(tmp_path):
    _, pipeline = open_pipeline(tmp_path, SHOPCRAWL_STORE_BATCH=100, SHOPCRAWL_STORE_FLUSH_SECONDS=0.05)
    process(pipeline, make_item(1, run_id=RUN))

    async def until_stored():
        deadline = time.monotonic() + 5
        while not stored_ids(tmp_path):
            assert time.monotonic() < deadline, "the timed flush never wrote the item"
            await asyncio.sleep(0.02)

    run_in_reactor(until_stored)
    close(pipeline)


def test_a_failed_write_keeps_the_batch_stops_the_crawl_and_is_written_later(tmp_path, caplog):
    crawler, pipeline = open_pipeline(tmp_path, engine=True, SHOPCRAWL_STORE_BATCH=3)
    db = sqlite3.connect(tmp_path / "shop.db", isolation_level=None)
    db.execute("ALTER TABLE observations RENAME TO observations_away")  # every item write now fails
    for n in (1, 2):
        process(pipeline, make_item(n, run_id=RUN))
    process(pipeline, reject(3))
    line = crawler.stats.get_value(FATAL_STAT)
    assert line.startswith("store write failed (SQLite store ")
    assert "no such table: observations" in line
    assert line.endswith("; 2 items and 1 rejects not stored")
    assert f"shopcrawl stopped: {line}" in caplog.text
    assert (len(pipeline.items), len(pipeline.rejects)) == (2, 1)
    assert crawler.stats.get_value("shopcrawl/store/flushes") is None

    assert wait_closed(crawler) == ["fatal_error"]
    db.execute("ALTER TABLE observations_away RENAME TO observations")
    db.close()
    close(pipeline)
    assert stored_ids(tmp_path) == [1, 2]
    assert crawler.stats.get_value(FATAL_STAT) == line  # the first failure stays the reason


def test_a_batch_that_cannot_be_written_by_the_close_is_reported(tmp_path, caplog):
    crawler, pipeline = open_pipeline(tmp_path, engine=True, SHOPCRAWL_STORE_BATCH=100)
    process(pipeline, make_item(1, run_id=RUN))
    db = sqlite3.connect(tmp_path / "shop.db", isolation_level=None)
    db.execute("ALTER TABLE observations RENAME TO observations_away")
    run_in_reactor(pipeline.close_spider)
    assert "1 items and 0 rejects could not be stored" in caplog.text
    assert crawler.stats.get_value(FATAL_STAT).endswith("; 1 items and 0 rejects not stored")
    assert wait_closed(crawler) == ["fatal_error"]
    db.execute("ALTER TABLE observations_away RENAME TO observations")
    db.close()
    run_in_reactor(lambda: pipeline.lifecycle.spider_closed("finished"))
    assert read_store(tmp_path).get_run(RUN).status == "failed"


@pytest.mark.parametrize("batch", ["0", "many"])
def test_a_bad_batch_size_is_refused_naming_the_setting(tmp_path, batch):
    with pytest.raises(ValueError, match="SHOPCRAWL_STORE_BATCH"):
        StorePipeline.from_crawler(make_crawler(tmp_path, SHOPCRAWL_STORE_BATCH=batch))


def test_items_that_piled_up_during_a_slow_write_go_out_in_batches_of_the_set_size(tmp_path):
    crawler, pipeline = open_pipeline(tmp_path, SHOPCRAWL_STORE_BATCH=4)
    pipeline.items = [make_item(n, run_id=RUN) for n in range(1, 11)]  # what arrived meanwhile
    run_in_reactor(pipeline.flush)
    assert crawler.stats.get_value("shopcrawl/store/flushes") == 3  # 4 + 4 + 2, not one write of 10
    assert pipeline.items == [] and stored_ids(tmp_path) == list(range(1, 11))
    close(pipeline)

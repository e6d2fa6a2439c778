"""How Redis callers ride out an outage: the Outage clock on its own, then RedisLink's sync and
asyncio clients against a real redis-server killed and restarted (tests/services.RedisProcess)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import redis
from scrapy.utils.test import get_crawler

from shopcrawl.distributed.link import Outage, RedisLink, RedisOutage
from shopcrawl.stores import redact_uri
from tests.services import RedisProcess

NAME = "redis://***@127.0.0.1:6399/0"  # redact_uri of redis://:pa55word@127.0.0.1:6399/0


@pytest.fixture
def caplog_link(caplog):
    caplog.set_level(logging.WARNING, logger="shopcrawl.distributed.link")
    return caplog


def messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "shopcrawl.distributed.link"]


def test_one_failure_that_the_next_try_mends_is_silent(caplog_link):
    outage = Outage(NAME, 60)
    assert outage.failed(redis.ConnectionError("connection reset")) == 0.0  # retry at once
    outage.succeeded()
    assert messages(caplog_link) == [] and outage.outages == 0


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(caplog_link):
    outage = Outage(NAME, 60)
    delays = [outage.failed(redis.ConnectionError("Connection refused")) for _ in range(4)]
    assert delays[0] == 0.0 and all(0 < d <= 2.0 for d in delays[1:])
    assert messages(caplog_link) == [
        f"Redis at {NAME} unreachable (ConnectionError: Connection refused); waiting up to 60 s for it"
    ]
    outage.succeeded()
    outage.succeeded()
    logged = messages(caplog_link)
    assert len(logged) == 2 and logged[1].startswith(f"Redis at {NAME} is back after ")
    assert outage.outages == 1 and outage.down_since is None


def test_an_outage_past_the_limit_gives_up_once_and_for_good():
    lines = []
    outage = Outage(NAME, 0, on_give_up=lines.append)
    with pytest.raises(RedisOutage) as info:
        outage.failed(redis.TimeoutError("Timeout reading from socket"))
    line = str(info.value)
    assert line == (
        f"Redis at {NAME} unreachable for 0 s (TimeoutError: Timeout reading from socket); "
        "check the server and REDIS_URL, or raise SHOPCRAWL_REDIS_OUTAGE_SECONDS"
    )
    assert lines == [line]
    with pytest.raises(RedisOutage, match="unreachable for 0 s"):
        outage.failed(redis.ConnectionError("again"))
    assert lines == [line]  # the crawl is stopped once


def test_the_crawls_link_names_redis_without_its_password():
    url = "redis://:pa55word@127.0.0.1:6399/0"
    crawler = get_crawler(settings_dict={"REDIS_URL": url, "SHOPCRAWL_REDIS_OUTAGE_SECONDS": "1"})
    link = RedisLink.for_crawler(crawler)
    assert RedisLink.for_crawler(crawler) is link
    assert (link.outage.name, link.outage.limit) == (NAME, 1.0)
    assert RedisLink.for_crawler(get_crawler()) is None
    link.sync.close()


@pytest.fixture
def server(tmp_path):
    process = RedisProcess(tmp_path / "redis", appendonly=True)
    yield process
    process.stop()


def until(condition, timeout=10.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")


def test_a_command_sent_while_redis_is_down_completes_after_the_restart(server, caplog_link):
    link = RedisLink(server.url, Outage(server.url, 30))
    link.sync.set("n", 41)
    server.kill()
    result = []
    sender = threading.Thread(target=lambda: result.append(link.sync.incr("n")))
    sender.start()
    until(lambda: link.outage.outages == 1)  # failed twice in a row: an outage, logged
    server.restart()
    sender.join(timeout=30)
    assert result == [42]  # sent once, after the restart, on the data the server kept
    assert link.outage.down_since is None
    unreachable, back = messages(caplog_link)
    assert unreachable.startswith(f"Redis at {server.url} unreachable (ConnectionError: ")
    assert back.startswith(f"Redis at {server.url} is back after ")
    link.sync.close()


def test_an_outage_longer_than_the_limit_raises_naming_redis_but_not_its_password(server):
    url = server.url.replace("redis://", "redis://:pa55word@")
    lines = []
    link = RedisLink(url, Outage(redact_uri(url), 1, on_give_up=lines.append))
    server.kill()
    with pytest.raises(RedisOutage) as info:
        link.sync.get("n")
    line = str(info.value)
    assert line.startswith(f"Redis at redis://***@127.0.0.1:{server.port}/0 unreachable for 1 s (")
    assert line.endswith("raise SHOPCRAWL_REDIS_OUTAGE_SECONDS") and "pa55word" not in line
    assert lines == [line]
    link.sync.close()


def test_the_asyncio_client_waits_out_a_restart_and_gives_up_past_the_limit(server):
    async def scenario():
        link = RedisLink(server.url, Outage(server.url, 30))
        await link.aio.set("n", 1)
        server.kill()
        pending = asyncio.ensure_future(link.aio.incr("n"))
        while link.outage.down_since is None:
            await asyncio.sleep(0.01)
        server.restart()
        assert await asyncio.wait_for(pending, 30) == 2
        await link.aio.aclose()
        url = server.url.replace("redis://", "redis://:pa55word@")
        short = RedisLink(url, Outage(redact_uri(url), 1))
        server.kill()
        try:
            with pytest.raises(RedisOutage, match="SHOPCRAWL_REDIS_OUTAGE_SECONDS") as info:
                await short.aio.get("n")
        finally:
            await short.aio.aclose()
        assert "pa55word" not in str(info.value) and f"redis://***@127.0.0.1:{server.port}/0" in str(
            info.value
        )

    asyncio.run(scenario())

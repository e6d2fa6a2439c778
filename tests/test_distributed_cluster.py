"""shopcrawl on a real one-node Redis Cluster (redis-server with cluster-enabled, all 16384 slots).

Such a node refuses, as any cluster does, a command or transaction whose declared keys hash to more
than one slot. A script is checked further when it starts with a ``#!lua`` shebang (Redis 7): then
every key it touches, declared or built inside the script from an ARGV prefix, must be in the slot
of the first. The first test runs every script of ``lua.py`` that way, through the calls the crawl
makes; a script that touched a key of another tag would fail there with "Script attempted to access
keys that do not hash to the same slot". The second runs a whole crawl on the node.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import redis.commands.core
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from shopcrawl.auth.grants import Grant
from shopcrawl.auth.keeper import lock_key
from shopcrawl.distributed import keys as K
from shopcrawl.distributed import lua
from shopcrawl.distributed.run import RunCoordinator
from shopcrawl.distributed.scheduler import LEASE_META, LeasedQueue
from shopcrawl.distributed.status import calls_per_second, run_statuses
from shopcrawl.downloadermiddlewares.ratelimit import RateLimitMiddleware
from shopcrawl.http import api_request
from shopcrawl.platforms import top
from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS
from shopcrawl.spiders.shop import ShopSpider
from tests.conftest import crawl
from tests.services import START_TIMEOUT, _drain, line_where, stop, unavailable

SELLER = "shop{1}:a"  # braces and a colon in the id: still one tag
T1 = "2026-01-01T00:00:00+00:00"
SCRIPTS = sorted(name for name in vars(lua) if name.isupper() and not name.startswith("_"))


@contextmanager
def cluster_node(workdir: Path) -> Iterator[str]:
    """A cluster-enabled redis-server on a free loopback port holding every slot; its URL once the
    node reports the cluster state ok."""
    binary = os.environ.get("SHOPCRAWL_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        unavailable("no redis-server: apt-get install redis-server (scripts/test.sh does)")
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random()
    for _ in range(20):  # a port that is taken makes redis-server exit: try another
        port = rng.randrange(20000, 60000)
        args = [
            str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
        ]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            line_where(process, START_TIMEOUT, lambda line: "Ready to accept connections" in line)
            break
        except RuntimeError:
            stop(process)
    else:
        unavailable("a cluster-enabled redis-server did not start on any of 20 ports")
    try:
        url = f"redis://127.0.0.1:{port}/0"
        with redis.Redis.from_url(url) as client:
            version = str(client.info("server")["redis_version"])
            if int(version.split(".")[0]) < 7:  # script shebangs and ADDSLOTSRANGE came in 7.0
                unavailable(f"redis-server {version} is older than 7.0")
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        line_where(process, START_TIMEOUT, lambda line: "Cluster state changed: ok" in line)
        threading.Thread(target=_drain, args=(process,), daemon=True).start()
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory):
    with cluster_node(tmp_path_factory.mktemp("cluster")) as url:
        yield url


@pytest.fixture
def cluster(cluster_url):
    client = redis.Redis.from_url(cluster_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def strict_scripts(monkeypatch) -> list[str]:
    """Every lua.py script with the shebang that makes Redis check each key it touches; the names of
    the scripts run, in order."""
    names = {}
    for name in SCRIPTS:
        names["#!lua\n" + getattr(lua, name)] = name
        monkeypatch.setattr(lua, name, "#!lua\n" + getattr(lua, name))
    ran: list[str] = []
    sync_call, async_call = redis.commands.core.Script.__call__, redis.commands.core.AsyncScript.__call__

    def record(script) -> None:
        ran.append(names.get(script.script, "(not lua.py)"))

    def sync_script(self, *args, **kwargs):
        record(self)
        return sync_call(self, *args, **kwargs)

    async def async_script(self, *args, **kwargs):
        record(self)
        return await async_call(self, *args, **kwargs)

    monkeypatch.setattr(redis.commands.core.Script, "__call__", sync_script)
    monkeypatch.setattr(redis.commands.core.AsyncScript, "__call__", async_script)
    return ran


def spider() -> ShopSpider:
    crawler = get_crawler(ShopSpider, {**SANDBOX_CREDENTIALS, "SHOPCRAWL_API_URL": "http://127.0.0.1:1/r"})
    return ShopSpider.from_crawler(crawler, seller_id=SELLER)


def run_steps(server: redis.Redis) -> None:
    """Two workers through one run: join, queue, lease, list, store, beat, a dead worker's leases
    requeued, a Redis that lost the run, the close, and `shopcrawl status`."""
    first, second = RunCoordinator(server, SELLER), RunCoordinator(server, SELLER)
    first.join("run-a", T1)
    assert second.join("run-b", T1)[0] == "run-a"
    s = spider()
    queue, other = LeasedQueue(server, s, first), LeasedQueue(server, s, second)
    for n in (1, 2, 3):
        assert queue.push(s._detail({str(n): {}}), fingerprint=f"fp-{n}")
    lease = queue.pop().meta[LEASE_META]
    assert other.pop() is not None
    assert first.claim("None|1", [1, 2, 3]) == {1, 2, 3}
    first.set_declared_total(3)
    first.expect(lease, 1)
    first.output_done(lease)
    first.stored([1], {"shopcrawl/api/calls": 4})
    first.beat()
    second.beat()
    server.delete(second.keys.heartbeat(second.worker))
    assert first.reclaim_dead() == 1
    assert first.pending() == (2, 0)
    assert first.requeue_orphans() == 0
    server.flushall()  # Redis lost the run: the next check makes it anew
    assert first.check_state() == "recovered"
    assert RunCoordinator(server, SELLER).join("run-c", T1)[0] == "run-a"
    assert first.try_close()
    listed = first.listed_count()
    first.compact()  # the closer drops the per-item keys once the record has what it needs
    first.leave()
    assert [(r.seller_id, r.state, r.listed) for r in run_statuses(server, SELLER)] == [
        (SELLER, "closed", listed)
    ]
    assert not server.exists(first.keys.owner) and not server.exists(first.keys.done)


async def rate_limit_steps(url: str) -> None:
    """One call through the shared rate limit (GCRA slot, window, its answer) and a ban."""
    settings = {**SANDBOX_CREDENTIALS, "REDIS_URL": url, "SHOPCRAWL_QPS": 50}
    limiter = RateLimitMiddleware.from_crawler(get_crawler(settings_dict=settings))
    request = api_request(
        "http://127.0.0.1:1/router/rest", top.DETAIL_METHOD, {"num_iids": "1"}, callback=None, meta={}
    )
    await limiter.process_request(request)
    limiter.process_response(request, TextResponse(request.url, body=b"{}"))
    await asyncio.gather(*limiter._reports)
    assert await limiter.bans.ban(top.DETAIL_METHOD, 0.05, app_wide=False)
    assert await limiter.bans.ban(top.DETAIL_METHOD, 0.05, app_wide=True)
    assert limiter.bans.link is not None
    await limiter.bans.link.aio.aclose()
    limiter.bans.link.sync.close()


def test_every_script_touches_keys_of_one_slot_only(cluster, cluster_url, strict_scripts):
    run_steps(cluster)
    asyncio.run(asyncio.wait_for(rate_limit_steps(cluster_url), 30))
    assert list(cluster.scan_iter(match=K.calls_prefix() + "*")) and calls_per_second(cluster) >= 0
    grant = Grant(api="top", app_key="app", seller=SELLER, access_token="t", expires_at=0.0)
    with cluster.lock(lock_key(grant), timeout=5, blocking_timeout=5):
        pass
    assert sorted(set(strict_scripts) - {"(not lua.py)"}) == SCRIPTS  # each one was checked


def test_a_crawl_on_a_redis_cluster_node_completes_and_its_run_expires_within_an_hour(
    cluster, cluster_url, sandbox_factory, tmp_path
):
    sandbox = sandbox_factory("--items", "300", "--seed", "47")
    result = crawl(
        sandbox.url, tmp_path, seller=SELLER, env={"REDIS_URL": cluster_url, "SHOPCRAWL_QPS": "100"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.scalar("SELECT COUNT(*) FROM items") == 300
    assert "hash to the same slot" not in result.log and "CROSSSLOT" not in result.log
    (status,) = run_statuses(cluster, SELLER)
    assert (status.state, status.listed, status.stored) == ("closed", 300, 300)
    keys = list(cluster.scan_iter(match=K.run_meta_pattern(SELLER).removesuffix("meta") + "*"))
    assert keys and all(0 < cluster.ttl(key) <= K.CLOSED_TTL_SECONDS for key in keys)
    assert cluster.get(K.current_key(SELLER)) is None
    app_keys = list(cluster.scan_iter(match=K.calls_prefix(SANDBOX_CREDENTIALS["SHOPCRAWL_APP_KEY"]) + "*"))
    assert app_keys  # the shared rate limit counted the calls under the app key's tag

"""Fixtures that run the real thing: the sandbox in a subprocess, `scrapy crawl` in a subprocess,
real SQLite files. Every wait is bounded."""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from shopcrawl.sandbox.local import SANDBOX_CREDENTIALS, crawl_command, crawl_env
from tests.sandbox_proc import run_sandbox
from tests.services import ferretdb, redis_server, unavailable

REPO = Path(__file__).resolve().parent.parent
CREDENTIALS = SANDBOX_CREDENTIALS
# In-process crawlers that find no SHOPCRAWL_SESSION look for a credentials file: never the user's own.
os.environ["SHOPCRAWL_CREDENTIALS"] = str(
    Path(os.environ.get("TMPDIR", "/tmp")) / f"shopcrawl-test-{os.getpid()}" / "credentials.json"
)


@dataclass
class CrawlResult:
    returncode: int
    log: str
    stderr: str
    db: Path

    def query(self, sql: str, *args: object) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()

    def scalar(self, sql: str, *args: object) -> object:
        return self.query(sql, *args)[0][0]


def crawl(
    url: str,
    tmp_path: Path,
    *,
    seller: str = "demo",
    settings: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    db_name: str = "shop.db",
    timeout: float = 300,
    extra_args: tuple[str, ...] = (),
) -> CrawlResult:
    """Run `scrapy crawl shop` against the sandbox at ``url`` into a SQLite file under tmp_path."""
    db = tmp_path / db_name
    log = tmp_path / f"crawl-{len(list(tmp_path.glob('crawl-*.log')))}.log"
    full_env = crawl_env(url, f"sqlite:///{db}", {"SHOPCRAWL_PROGRESS_INTERVAL": "1", **(env or {})})
    args = crawl_command(seller, {"LOG_FILE": log, **(settings or {})}, *extra_args)
    proc = subprocess.run(args, env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    return CrawlResult(proc.returncode, log.read_text() if log.exists() else "", proc.stderr, db)


@pytest.fixture
def sandbox_factory():
    """Start sandboxes with given options; all are stopped at teardown."""
    stack = []

    def start(*args: str):
        ctx = run_sandbox(*args)
        proc = ctx.__enter__()
        stack.append(ctx)
        return proc

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory):
    """The URI of a MongoDB-wire server for this session (FerretDB unless SHOPCRAWL_TEST_MONGO_URI)."""
    explicit = os.environ.get("SHOPCRAWL_TEST_MONGO_URI")
    if explicit:
        yield explicit.rstrip("/")
        return
    with ferretdb(tmp_path_factory.mktemp("ferretdb")) as uri:
        yield uri.rstrip("/")


@pytest.fixture
def mongo_uri(mongo_server, request):
    """A store URI with a database of its own for this test, dropped afterwards."""
    import pymongo

    name = "t_" + re.sub(r"[^a-zA-Z0-9]", "_", request.node.name)[:40] + "_" + secrets.token_hex(3)
    client = pymongo.MongoClient(mongo_server, serverSelectionTimeoutMS=5000)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        unavailable(f"MongoDB-wire server {mongo_server} unreachable: {exc}")
    base, _, query = mongo_server.partition("?")
    yield f"{base}/{name}" + (f"?{query}" if query else "")
    client.drop_database(name)
    client.close()


@pytest.fixture
def clock():
    """The stores' clock, set by the test (tests/test_store_sqlite.py: Clock)."""
    from tests.test_store_sqlite import Clock

    return Clock()


@pytest.fixture(params=["sqlite", "mongodb-upsert", "mongodb-diff"])
def store(request, tmp_path, clock):
    """Each backend a store test runs on: SQLite (a file in tmp_path), and MongoDB (a database of its
    own on the test MongoDB-wire server) in both item write shapes, whatever the server."""
    from shopcrawl.stores import SqliteStore
    from shopcrawl.stores.mongo import MongoStore

    if request.param == "sqlite":
        backend = SqliteStore(tmp_path / "shop.db", clock=clock)
    else:
        shape = request.param.removeprefix("mongodb-")
        backend = MongoStore(request.getfixturevalue("mongo_uri"), clock=clock, write_shape=shape)
    backend.open()
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url):
    """A real Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server_url)
    client.flushall()
    client.close()
    return redis_server_url

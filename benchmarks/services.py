"""The services a scenario runs against: the sandbox, a MongoDB-wire server (FerretDB, or --mongo-uri)
and redis-server, the last two through ``tests.services`` (a missing one is a ScenarioFailed here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
import pytest

from benchmarks.procs import ScenarioFailed, child_env, child_pid, process_cpu_seconds
from tests.services import RedisProcess, ferretdb, ferretdb_binary, first_line, stop

START_TIMEOUT = 600.0  # a 100,000-item sandbox takes a while to build its shop
# Where each dialect's API lives under the sandbox's root, and its SHOPCRAWL_API / SHOPCRAWL_PLATFORM.
DIALECTS: dict[str, tuple[str, str, str]] = {
    "top": ("top", "taobao", "/router/rest"),
    "1688": ("1688", "1688", "/openapi"),
    "gateway-taobao": ("gateway", "taobao", ""),
    "gateway-1688": ("gateway", "1688", ""),
}


def _control(root: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(root + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


@dataclass
class Sandbox:
    """A running ``python -m shopcrawl.sandbox``; ``root`` is its base URL without an API path."""

    items: int
    root: str
    options: tuple[str, ...]
    pid: int

    def url(self, dialect: str) -> str:
        return self.root + DIALECTS[dialect][2]

    def reset(self) -> None:
        _control(self.root, "/_sandbox/reset-stats", {})

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = _control(self.root, "/_sandbox/stats")
        return stats

    def shops(self) -> list[dict[str, Any]]:
        """``GET /_sandbox/shops``: every shop served (seller, on-sale items, session), the default first."""
        shops: list[dict[str, Any]] = _control(self.root, "/_sandbox/shops")
        return shops


@contextmanager
def sandbox(items: int, *options: str, workdir: Path) -> Iterator[Sandbox]:
    """Start a sandbox shop of ``items`` items (``--page-cap max(items, 20000)``); stop it after."""
    args = ["--items", str(items), "--page-cap", str(max(items, 20000)), *options]
    log = workdir / f"sandbox-{items}-{len(list(workdir.glob('sandbox-*.log')))}.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "shopcrawl.sandbox", "--log-level", "WARNING", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            env=child_env(),
        )
    try:
        try:
            url = first_line(process, START_TIMEOUT)
        except (TimeoutError, RuntimeError) as error:
            raise ScenarioFailed(
                f"sandbox {' '.join(args)} did not start: {error}: {log.read_text()}"
            ) from None
        yield Sandbox(items, url.removesuffix("/router/rest"), tuple(options), process.pid)
    finally:
        stop(process)


def mongo_count(server: str, database: str, collection: str) -> int:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server, serverSelectionTimeoutMS=10000)
    with client:
        return client[database][collection].count_documents({})


def mongo_drop(server: str, database: str) -> None:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server, serverSelectionTimeoutMS=10000)
    with client:
        client.drop_database(database)


@contextmanager
def service_needed() -> Iterator[None]:
    """Turn ``tests.services``' skip/fail (a missing FerretDB or redis-server) into ScenarioFailed."""
    try:
        yield
    except (pytest.skip.Exception, pytest.fail.Exception) as missing:
        raise ScenarioFailed(f"service missing: {missing}") from None


@dataclass
class MongoServer:
    """A MongoDB-wire server: FerretDB started here (``pid`` set: its CPU is measurable) or --mongo-uri's."""

    uri: str
    pid: int | None
    version: str

    def cpu_seconds(self) -> float | None:
        return None if self.pid is None else process_cpu_seconds(self.pid)


@contextmanager
def mongo_server(workdir: Path, explicit: str | None) -> Iterator[MongoServer]:
    if explicit:
        yield MongoServer(explicit.rstrip("/"), None, server_version(explicit))
        return
    with service_needed(), ferretdb(workdir) as uri:
        yield MongoServer(uri.rstrip("/"), child_pid("ferretdb"), server_version(uri))


def server_version(uri: str) -> str:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    with client:
        info = client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        version = info["ferretdbVersion"]
        if version in ("", "unknown"):  # scripts/ferretdb.sh builds it without version stamps
            found = re.search(r"v\d+\.\d+\.\d+", ferretdb_binary() or "")
            version = f"{found.group(0)} (from the binary's path)" if found else "(version unknown)"
        return f"FerretDB {version}, MongoDB wire protocol {info.get('version')}"
    return f"MongoDB {info.get('version')}"


@contextmanager
def redis(workdir: Path) -> Iterator[str]:
    """A fresh redis-server (``tests.services.RedisProcess``) on loopback; yields its URL."""
    with service_needed():
        server = RedisProcess(workdir)
    try:
        yield server.url
    finally:
        server.stop()

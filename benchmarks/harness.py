"""Processes and measurement for ``python -m benchmarks``: the sandbox, crawls as measured subprocesses,
stores and their counts.

Every crawl is a child process reaped with :func:`os.wait4`, which returns that child's own resource
usage: wall time (from just before the spawn to the reap), user + system CPU seconds and peak RSS.
Children import the code of this checkout (``PYTHONPATH`` starts with the repository), whatever
package the interpreter has installed.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopcrawl.sandbox.local import crawl_command, crawl_env
from tests.services import first_line, stop

REPO = Path(__file__).resolve().parent.parent
CRAWL_TIMEOUT = 3600.0
START_TIMEOUT = 600.0  # a 100,000-item sandbox takes a while to build its shop
SUMMARY = re.compile(
    r"Run (?P<run_id>\S+) (?P<status>[A-Z]+): (?P<accounted>[\d,]+) / (?P<declared>[\d,]+)"
    r" items accounted for \((?P<coverage>[\d.]+)%\); stored (?P<stored>[\d,]+)"
    r".*?retries (?P<retries>[\d,]+); ban wait (?P<ban_wait>[\d.]+) s"
)
# Where each dialect's API lives under the sandbox's root, and its SHOPCRAWL_API / SHOPCRAWL_PLATFORM.
DIALECTS: dict[str, tuple[str, str, str]] = {
    "top": ("top", "taobao", "/router/rest"),
    "1688": ("1688", "1688", "/openapi"),
    "gateway-taobao": ("gateway", "taobao", ""),
    "gateway-1688": ("gateway", "1688", ""),
}


# --profile DIR: every crawl runs under pyinstrument, which writes DIR/<crawl>.html (main thread only;
# the figures then include the profiler's overhead).
PROFILE_DIR: list[Path] = []


def profiled(command: Sequence[str], name: str) -> list[str]:
    """``python -m X ...`` as ``python -m pyinstrument -o DIR/name.html -m X ...`` under --profile."""
    if not PROFILE_DIR or list(command[:2]) != [sys.executable, "-m"]:
        return list(command)
    out = PROFILE_DIR[0] / f"{name}.html"
    return [sys.executable, "-m", "pyinstrument", "-r", "html", "-o", str(out), *command[1:]]


class ScenarioFailed(RuntimeError):
    """A scenario could not run: a crawl failed, stored the wrong count, or a service is missing."""


def progress(message: str) -> None:
    print(message, flush=True)


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) with this checkout first on ``PYTHONPATH``."""
    base = dict(os.environ if env is None else env)
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), base.get("PYTHONPATH", "")) if p)
    return base


@dataclass
class Measured:
    """One child process: exit status, wall s, user+sys CPU s, peak RSS MiB and its output."""

    exit: int
    wall: float
    cpu: float
    rss_mib: float
    stdout: str
    stderr: str

    def tail(self, lines: int = 15) -> str:
        return "\n".join((self.stdout + "\n" + self.stderr).strip().splitlines()[-lines:])


class Child:
    """A started child process whose output goes to files; :meth:`reap` measures it."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path, tag: str) -> None:
        self.out_path, self.err_path = cwd / f"{tag}.out", cwd / f"{tag}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(list(args), env=dict(env), cwd=cwd, stdout=out, stderr=err)

    def reap(self, timeout: float = CRAWL_TIMEOUT) -> Measured:
        timer = threading.Timer(timeout, self.process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(self.process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - self.started
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return Measured(
            exit=self.process.returncode,
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            rss_mib=usage.ru_maxrss / 1024,
            stdout=self.out_path.read_text(errors="replace"),
            stderr=self.err_path.read_text(errors="replace"),
        )


def run_measured(args: Sequence[str], env: Mapping[str, str], cwd: Path, tag: str) -> Measured:
    return Child(args, env, cwd, tag).reap()


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


@dataclass
class Store:
    """Where a crawl writes: ``kind`` is ``sqlite``, ``mongodb`` or ``null``."""

    kind: str
    uri: str
    path: Path | None = None
    server: str = ""
    database: str = ""

    def count(self, summary: Mapping[str, Any] | None) -> int:
        """Distinct items the store holds (null: the ``stored`` of the crawl's summary line)."""
        if self.kind == "sqlite":
            assert self.path is not None
            if not self.path.exists():
                return 0
            with sqlite3.connect(self.path) as conn:
                count: int = conn.execute("SELECT COUNT(DISTINCT num_iid) FROM items").fetchone()[0]
                return count
        if self.kind == "mongodb":
            return mongo_count(self.server, self.database, "items")
        return int(summary["stored"]) if summary else 0


def sqlite_store(workdir: Path, name: str) -> Store:
    path = workdir / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Store("sqlite", f"sqlite:///{path}", path=path)


NULL_STORE = Store("null", "null://")


def mongo_store(server: str, database: str, *, options: str = "") -> Store:
    """A store in ``database`` on ``server`` (dropped first: a fresh store)."""
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server, serverSelectionTimeoutMS=10000)
    with client:
        client.drop_database(database)
    base, _, query = server.rstrip("/").partition("?")
    query = "&".join(q for q in (query, options) if q)
    uri = f"{base.rstrip('/')}/{database}" + (f"?{query}" if query else "")
    return Store("mongodb", uri, server=server, database=database)


def mongo_count(server: str, database: str, collection: str) -> int:
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server, serverSelectionTimeoutMS=10000)
    with client:
        return client[database][collection].count_documents({})


def mongo_drop(server: str, database: str) -> None:
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server, serverSelectionTimeoutMS=10000)
    with client:
        client.drop_database(database)


@dataclass
class Crawl:
    """One measured ``scrapy crawl shop``: the process, the sandbox's counters, the store's count."""

    name: str
    measured: Measured
    calls: int
    calls_by_method: dict[str, int]
    outcomes: dict[str, int]
    bans_started: int
    stored: int
    summary: dict[str, Any] = field(default_factory=dict)
    sandbox_cpu: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        m = self.measured
        return {
            "name": self.name,
            "exit": m.exit,
            "wall_s": round(m.wall, 3),
            "cpu_s": round(m.cpu, 3),
            "peak_rss_mib": round(m.rss_mib, 1),
            "calls": self.calls,
            "calls_by_method": self.calls_by_method,
            "outcomes": self.outcomes,
            "bans_started": self.bans_started,
            "stored": self.stored,
            "summary": self.summary,
            "sandbox_cpu_s": round(self.sandbox_cpu, 3),
        }


def parse_summary(stdout: str) -> dict[str, Any]:
    """The fields of the run summary line ``scrapy crawl shop`` prints last (empty if none)."""
    found = list(SUMMARY.finditer(stdout))
    if not found:
        return {}
    fields = found[-1].groupdict()
    out: dict[str, Any] = {"run_id": fields["run_id"], "status": fields["status"].lower()}
    for key in ("accounted", "declared", "stored", "retries"):
        out[key] = int(fields[key].replace(",", ""))
    out["coverage"] = float(fields["coverage"]) / 100
    out["ban_wait_s"] = float(fields["ban_wait"])
    return out


def crawl_settings(extra: Mapping[str, object] | None = None) -> dict[str, object]:
    return {"LOG_LEVEL": "WARNING", **(extra or {})}


def shop_env(
    box: Sandbox, dialect: str, store: Store, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    api, platform, _ = DIALECTS[dialect]
    return child_env(
        crawl_env(
            box.url(dialect), store.uri, {"SHOPCRAWL_API": api, "SHOPCRAWL_PLATFORM": platform, **(env or {})}
        )
    )


def crawl(
    box: Sandbox,
    store: Store,
    workdir: Path,
    name: str,
    *,
    dialect: str = "top",
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    expect: int | None = None,
) -> Crawl:
    """Reset the sandbox's counters, run one crawl, check it exited 0 and stored ``expect`` items."""
    box.reset()
    command = profiled(crawl_command("demo", crawl_settings(settings), *args), name)
    sandbox_cpu = process_cpu_seconds(box.pid)
    measured = run_measured(command, shop_env(box, dialect, store, env), workdir, name)
    return finish(
        box, store, name, measured, expect=box.items if expect is None else expect, since=sandbox_cpu
    )


def finish(box: Sandbox, store: Store, name: str, measured: Measured, *, expect: int, since: float) -> Crawl:
    """The crawl's figures once its process(es) ended; ``since`` is the sandbox's CPU s at the start."""
    sandbox_cpu = process_cpu_seconds(box.pid) - since
    stats = box.stats()
    summary = parse_summary(measured.stdout)
    stored = store.count(summary)
    result = Crawl(
        name=name,
        measured=measured,
        calls=sum(stats["calls"].values()),
        calls_by_method=dict(stats["calls"]),
        outcomes=dict(stats["outcomes"]),
        bans_started=len(stats["bans"]),
        stored=stored,
        summary=summary,
        sandbox_cpu=sandbox_cpu,
    )
    check(name, measured, stored, expect)
    return result


def check(name: str, measured: Measured, stored: int, expect: int) -> None:
    if measured.exit != 0:
        raise ScenarioFailed(f"{name}: exit status {measured.exit}\n{measured.tail()}")
    if stored != expect:
        raise ScenarioFailed(f"{name}: stored {stored:,} items, expected {expect:,}\n{measured.tail()}")


@contextmanager
def service_needed() -> Iterator[None]:
    """Turn ``tests.services``' skip/fail (a missing FerretDB or redis-server) into ScenarioFailed."""
    import pytest

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
    from tests.services import ferretdb

    if explicit:
        yield MongoServer(explicit.rstrip("/"), None, server_version(explicit))
        return
    with service_needed(), ferretdb(workdir) as uri:
        yield MongoServer(uri.rstrip("/"), _child_pid("ferretdb"), server_version(uri))


def server_version(uri: str) -> str:
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    with client:
        info = client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        version = info["ferretdbVersion"]
        if version in ("", "unknown"):  # scripts/ferretdb.sh builds it without version stamps
            found = re.search(r"v\d+\.\d+\.\d+", os.environ.get("SHOPCRAWL_FERRETDB_BIN", ""))
            version = f"{found.group(0)} (from the binary's path)" if found else "(version unknown)"
        return f"FerretDB {version}, MongoDB wire protocol {info.get('version')}"
    return f"MongoDB {info.get('version')}"


def _child_pid(comm: str) -> int | None:
    """The newest child process of ours named ``comm`` (FerretDB: ``tests.services`` yields only its URI)."""
    found: list[tuple[int, int]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, fields = _stat(int(entry.name))
        except OSError:
            continue
        if name == comm and int(fields[1]) == os.getpid():
            found.append((int(fields[19]), int(entry.name)))  # (start time, pid)
    return max(found)[1] if found else None


def _stat(pid: int) -> tuple[str, list[str]]:
    """``comm`` and the fields after it of ``/proc/<pid>/stat`` (state is ``fields[0]``)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a running process, in seconds."""
    _, fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def redis(workdir: Path) -> Iterator[str]:
    """A fresh redis-server (``tests.services.RedisProcess``) on loopback; yields its URL."""
    from tests.services import RedisProcess

    with service_needed():
        server = RedisProcess(workdir)
    try:
        yield server.url
    finally:
        server.stop()

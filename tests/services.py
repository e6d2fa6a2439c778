"""Real services for the tests: a MongoDB-wire server (FerretDB) started per session.

``SHOPCRAWL_TEST_MONGO_URI`` points the tests at an existing server instead. Under ``CI=true`` a
missing service fails the tests that need it; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import random
import selectors
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere: a service a test needs is missing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: service tests must run)", pytrace=False)
    pytest.skip(reason)


def first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line of ``process``, waiting at most ``timeout`` seconds."""
    return line_where(process, timeout, lambda line: True)


def line_where(process: subprocess.Popen[bytes], timeout: float, wanted: Callable[[str], bool]) -> str:
    """The first stdout line of ``process`` for which ``wanted`` is true, waiting at most ``timeout`` s."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if wanted(line.decode().strip()):
                    return line.decode().strip()
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no such line within {timeout} s")
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"exited with {process.wait()} before printing the line")
            buffer += chunk


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, wait (kill after 10 s), close the stdout pipe."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def ferretdb_binary() -> str | None:
    explicit = os.environ.get("SHOPCRAWL_FERRETDB_BIN")
    if explicit:
        return explicit
    if shutil.which("go") is None:
        return None
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "ferretdb.sh")], capture_output=True, text=True, timeout=900
    )
    return built.stdout.strip() if built.returncode == 0 else None


@contextmanager
def ferretdb(workdir: Path) -> Iterator[str]:
    """Start FerretDB (SQLite backend) on a free loopback port; yield its mongodb:// URI."""
    binary = ferretdb_binary()
    if binary is None:
        unavailable("no FerretDB binary: install Go or set SHOPCRAWL_FERRETDB_BIN / SHOPCRAWL_TEST_MONGO_URI")
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            str(binary),
            "--listen-addr",
            "127.0.0.1:0",
            f"--sqlite-url=file:{workdir}/",
            "--log-level",
            "error",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        yield first_line(process, START_TIMEOUT)
    finally:
        stop(process)


class RedisProcess:
    """Debian's redis-server on a free loopback port, which a test may kill and start again on the
    same port: with its append-only file (``appendonly=True``, the data comes back) or empty.

    A random port is tried and, if taken, another (redis-server exits when it cannot bind), so no
    port is picked by binding and releasing it first."""

    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        binary = os.environ.get("SHOPCRAWL_REDIS_SERVER") or shutil.which("redis-server")
        if binary is None:
            unavailable("no redis-server: apt-get install redis-server (scripts/test.sh does)")
        self.binary, self.workdir, self.appendonly = str(binary), workdir, appendonly
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        rng = random.Random()
        for _ in range(20):
            self.port = rng.randrange(20000, 60000)
            if self._start():
                return
        unavailable("redis-server did not start on any of 20 ports")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _start(self) -> bool:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        args += ["--dir", str(self.workdir), "--protected-mode", "yes"]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if _wait_ready(process, b"Ready to accept connections", START_TIMEOUT):
            self.process = process
            return True
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save; only what the append-only file holds survives."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.process = None

    def restart(self, *, empty: bool = False) -> None:
        """Start again on the same port; ``empty`` throws the append-only data away first."""
        if empty:
            shutil.rmtree(self.workdir)
            self.workdir.mkdir(parents=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._start():  # the old socket may linger for a moment
            assert time.monotonic() < deadline, f"redis-server did not restart on port {self.port}"

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Start Debian's redis-server on a free loopback port; yield its redis:// URL."""
    server = RedisProcess(workdir)
    try:
        yield server.url
    finally:
        server.stop()


def _wait_ready(process: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bool:
    """Read output until ``marker`` (True) or the process exits (False). Output is then drained."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"redis-server not ready within {timeout} s")
            if not selector.select(left):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                return False
            seen = seen[-4096:] + chunk
    threading.Thread(target=_drain, args=(process,), daemon=True).start()
    return True


def _drain(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    with suppress(ValueError, OSError):
        while os.read(process.stdout.fileno(), 65536):
            pass

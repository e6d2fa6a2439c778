"""Real services for the tests: a MongoDB-wire server (FerretDB) started per session.

``SHOPCRAWL_TEST_MONGO_URI`` points the tests at an existing server instead. Under ``CI=true`` a
missing service fails the tests that need it; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no first line within {timeout} s")
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"exited with {process.wait()} before printing a line")
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode().strip()


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
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

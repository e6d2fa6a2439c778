"""Child processes of ``python -m benchmarks``, measured one by one.

Every crawl is a child process reaped with :func:`os.wait4`, which returns that child's own resource
usage: wall time (from just before the spawn to the reap), user + system CPU seconds and peak RSS.
Children import the code of this checkout (``PYTHONPATH`` starts with the repository), whatever
package the interpreter has installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CRAWL_TIMEOUT = 3600.0


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


def child_pid(comm: str) -> int | None:
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

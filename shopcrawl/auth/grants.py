"""The credentials file: one grant per (api, app key, seller), written atomically with mode 0600.

A grant is what a seller's authorisation gave this app: TOP's session (``access_token``) or 1688's
``access_token``, the refresh token if there is one, when each expires, and who the seller is. The file
is JSON, by default ``$XDG_CONFIG_HOME/shopcrawl/credentials.json`` (``~/.config/...``), or
``SHOPCRAWL_CREDENTIALS``. It is read and written only here; nothing else sees a token but the
signing middleware. A file that group or others may read is refused, as ssh refuses such a key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

FILE_VERSION = 1
AUTH_APIS = ("top", "1688")
WARN_AHEAD_SECONDS = 7 * 86400  # warn this long before a credential that cannot be refreshed expires


class CredentialsError(Exception):
    """The credentials file is missing, unsafe or unreadable, or holds no grant for the crawl; the
    message says what to do and never holds a token."""


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "shopcrawl" / "credentials.json"


def credentials_path(setting: Any = None) -> Path:
    """``SHOPCRAWL_CREDENTIALS`` (a setting or the env var), else the default under the config dir."""
    raw = str(setting or os.environ.get("SHOPCRAWL_CREDENTIALS") or "").strip()
    return Path(raw).expanduser() if raw else default_path()


@dataclass(frozen=True)
class Grant:
    """One seller's authorisation of one app. Times are unix seconds; 0 means none or unknown."""

    api: str  # "top" | "1688"
    app_key: str
    seller: str  # the name a crawl's seller_id matches first: TOP's nick, 1688's memberId
    access_token: str = field(repr=False)
    expires_at: float
    refresh_token: str = field(default="", repr=False)
    refresh_expires_at: float = 0.0
    user_id: str = ""  # TOP taobao_user_id; 1688 aliId
    nick: str = ""  # TOP taobao_user_nick; 1688 resource_owner (the login id)
    obtained_at: float = 0.0
    refreshed_at: float = 0.0
    warned_at: float = 0.0  # when the expiry warning last went to the alert webhook

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.api, self.app_key, self.seller)

    def names(self) -> set[str]:
        """Every name a crawl's ``seller_id`` may give for this seller."""
        return {name for name in (self.seller, self.nick, self.user_id) if name}

    def refreshable(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return bool(self.refresh_token) and (not self.refresh_expires_at or self.refresh_expires_at > now)

    def expired(self, now: float | None = None, *, skew: float = 0.0) -> bool:
        now = time.time() if now is None else now
        return bool(self.expires_at) and now >= self.expires_at - skew

    def login_deadline(self, now: float | None = None) -> float | None:
        """When this grant stops working for good unless the seller authorises again: the session's
        expiry if it cannot be refreshed, else the refresh token's expiry (None: unknown)."""
        if self.refreshable(now):
            return self.refresh_expires_at or None
        return self.expires_at or None

    def public(self, now: float | None = None) -> dict[str, Any]:
        """Everything but the tokens (for ``auth status``)."""
        now = time.time() if now is None else now
        deadline = self.login_deadline(now)
        return {
            "api": self.api,
            "app_key": self.app_key,
            "seller": self.seller,
            "nick": self.nick,
            "user_id": self.user_id,
            "expires_at": _iso(self.expires_at),
            "expires_in": _left(self.expires_at, now),
            "refreshable": self.refreshable(now),
            "refresh_expires_at": _iso(self.refresh_expires_at) if self.refresh_token else None,
            "login_needed_by": _iso(deadline or 0),
            "state": self.state(now),
            "warning": expiry_warning(self, now),
            "obtained_at": _iso(self.obtained_at),
            "refreshed_at": _iso(self.refreshed_at),
        }

    def state(self, now: float | None = None) -> str:
        """``ok``, ``expiring`` (cannot be refreshed, stops within 7 days), or ``login needed``."""
        now = time.time() if now is None else now
        if self.expired(now) and not self.refreshable(now):
            return "login needed"
        deadline = self.login_deadline(now)
        if deadline is not None and deadline - now <= WARN_AHEAD_SECONDS:
            return "expiring"
        return "ok"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> Grant:
        if not isinstance(raw, dict):
            raise ValueError("a grant is not an object")
        known = {f.name for f in fields(cls)}
        grant = cls(**{k: v for k, v in raw.items() if k in known})
        if grant.api not in AUTH_APIS or not grant.app_key or not grant.seller or not grant.access_token:
            raise ValueError("a grant lacks its api, app_key, seller or access_token")
        return grant


def expiry_warning(grant: Grant, now: float | None = None) -> str:
    """One line when the grant stops working within 7 days and no refresh can save it, else ''."""
    now = time.time() if now is None else now
    deadline = grant.login_deadline(now)
    if deadline is None or deadline - now > WARN_AHEAD_SECONDS:
        return ""
    what = "session" if grant.api == "top" else "access token"
    if grant.refreshable(now):
        what = "refresh token"
    label = f"{_API_NAMES[grant.api]} {what} of seller {grant.seller} (app {grant.app_key})"
    hint = f"run shopcrawl auth login --api {grant.api}"
    if deadline <= now:
        return f"the {label} expired at {_iso(deadline)} and cannot be refreshed: {hint}"
    return (
        f"the {label} cannot be refreshed and expires in {human_seconds(deadline - now)} "
        f"({_iso(deadline)}): {hint} before then"
    )


_API_NAMES = {"top": "TOP", "1688": "1688"}


def human_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _iso(ts: float) -> str | None:
    if not ts:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _left(ts: float, now: float) -> int | None:
    return int(ts - now) if ts else None


class CredentialsFile:
    """The grants in one file. Every change is a read-modify-write under an exclusive lock on a
    sibling ``.lock`` file (processes on this machine), then an atomic rename of a 0600 temp file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.RLock()
        self._depth = 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the file among this machine's processes (re-entrant in this object)."""
        with self._mutex:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(str(self.path) + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth = 1
                yield
            finally:
                self._depth = 0
                os.close(fd)  # releases the lock

    def load(self) -> list[Grant]:
        """The grants (none when the file does not exist); refuses a file others may read."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CredentialsError(f"cannot read the credentials file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_mode & 0o077:
                raise CredentialsError(
                    f"the credentials file {self.path} has mode {stat.S_IMODE(info.st_mode):04o}; it holds "
                    f"tokens, so it must be readable by its owner alone: chmod 600 {self.path}"
                )
            if info.st_uid != os.geteuid():
                raise CredentialsError(
                    f"the credentials file {self.path} belongs to another user (uid {info.st_uid}); "
                    "it must be this user's own file"
                )
            data = handle.read()
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or not isinstance(raw.get("grants"), list):
                raise ValueError('no "grants" list')
            return [Grant.from_json(entry) for entry in raw["grants"]]
        except (ValueError, TypeError) as exc:
            raise CredentialsError(
                f"the credentials file {self.path} is not valid ({exc}); "
                "move it away and run shopcrawl auth login again"
            ) from None

    def save(self, grants: list[Grant]) -> None:
        """Replace the file's contents atomically: a reader sees the old grants or the new ones."""
        body = json.dumps(
            {"version": FILE_VERSION, "grants": [g.to_json() for g in grants]}, ensure_ascii=False, indent=1
        ).encode()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=self.path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def put(self, grant: Grant) -> None:
        """Add or replace the grant with the same (api, app key, seller)."""
        with self.locked():
            grants = [g for g in self.load() if g.key != grant.key]
            self.save([*grants, grant])

    def update(self, grant: Grant, **changes: Any) -> Grant:
        """Store ``grant`` with ``changes`` (under the lock, against the file's current grants)."""
        new = replace(grant, **changes)
        self.put(new)
        return new

    def find(self, api: str, app_key: str, seller: str) -> Grant:
        """The grant a crawl of ``seller`` uses, or a CredentialsError saying how to get one."""
        grants = [g for g in self.load() if g.api == api and g.app_key == app_key]
        for grant in grants:
            if grant.seller == seller:
                return grant
        for grant in grants:
            if seller in grant.names():
                return grant
        hint = f"run shopcrawl auth login --api {api} (or set SHOPCRAWL_SESSION)"
        if grants:
            known = ", ".join(sorted(g.seller + (f" ({g.nick})" if g.nick else "") for g in grants))
            raise CredentialsError(
                f"no {_API_NAMES[api]} authorisation for seller {seller!r} of app {app_key} in "
                f"{self.path} (authorised: {known}); {hint}"
            )
        raise CredentialsError(f"no {_API_NAMES[api]} authorisation for app {app_key} in {self.path}; {hint}")

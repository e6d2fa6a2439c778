"""Stores behind one small interface (``Store``), chosen by the ``SHOPCRAWL_STORE`` URI.

``open_store`` only builds the store; the caller calls ``open()`` (off the reactor thread) and ``close()``.
A new backend is one entry in ``_BACKENDS``: scheme -> factory taking the full URI.
"""

from __future__ import annotations

from collections.abc import Callable

from shopcrawl.stores.base import RunRecord, Store, StoreError
from shopcrawl.stores.sqlite import SqliteStore

__all__ = ["RunRecord", "SqliteStore", "Store", "StoreError", "open_store", "redact_uri"]

StoreFactory = Callable[[str], Store]
_SETTING = "SHOPCRAWL_STORE"


def redact_uri(uri: str, *, keep_user: bool = True) -> str:
    """``mongodb://app:s3cret@db/x`` -> ``mongodb://app:***@db/x``; ``keep_user=False`` hides the user too.

    The userinfo is taken up to the *last* ``@``, so an unescaped ``@`` or ``/`` in a password is still
    hidden; this errs on the side of hiding more than the userinfo.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "", uri
    userinfo, at, hosts = rest.rpartition("@")
    if not at:
        return uri
    user, colon, _password = userinfo.partition(":")
    redacted = (f"{user}:***" if colon else user) if keep_user and user else "***"
    return f"{scheme}{sep}{redacted}@{hosts}"


def _bad_uri(uri: str, problem: str) -> ValueError:
    return ValueError(
        f"{_SETTING}={redact_uri(uri, keep_user=False)!r}: {problem}; accepted: "
        "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
        "mongodb://[user:password@]host[:port][/database][?options], mongodb+srv://..., "
        "or null:// (stores nothing)"
    )


def _sqlite(uri: str) -> Store:
    rest = uri.partition("://")[2]
    if not rest.startswith("/"):
        raise _bad_uri(uri, "a sqlite URI has no host; use three slashes (four for an absolute path)")
    path = rest[1:]
    if not path or path == ":memory:" or "?" in path or "#" in path:
        raise _bad_uri(uri, "a sqlite URI needs a file path, without query or fragment")
    return SqliteStore(path)


def _mongodb(uri: str) -> Store:
    from shopcrawl.stores.mongo import MongoStore  # imports this package: import when used

    hosts = uri.partition("://")[2].rpartition("@")[2]
    if not hosts.partition("/")[0].partition("?")[0]:
        raise _bad_uri(uri, "a MongoDB URI needs a host")
    return MongoStore(uri)


def _null(uri: str) -> Store:
    from shopcrawl.stores.null import NullStore

    if uri.partition("://")[2]:
        raise _bad_uri(uri, "null:// takes no host or path")
    return NullStore()


_BACKENDS: dict[str, StoreFactory] = {
    "sqlite": _sqlite,
    "mongodb": _mongodb,
    "mongodb+srv": _mongodb,
    "null": _null,
}


def open_store(uri: str) -> Store:
    """Build the store for ``uri`` (not yet opened). Raises ``ValueError`` naming ``SHOPCRAWL_STORE``."""
    scheme, sep, _ = uri.partition("://")
    factory = _BACKENDS.get(scheme.lower()) if sep else None
    if factory is None:
        schemes = ", ".join(f"{name}://" for name in _BACKENDS)
        raise _bad_uri(uri, f"unknown store scheme {scheme if sep else ''!r} (known: {schemes})")
    return factory(uri)

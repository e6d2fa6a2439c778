"""Every shopcrawl setting parsed and checked in one place: defaults, types and errors.

``settings.py`` reads the environment; this module only reads Scrapy settings. A bad value
raises :class:`ConfigError` naming the setting, before any request is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shopcrawl.platforms import top


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says how to fix it."""


class SettingsLike(Protocol):
    def get(self, name: str, default: Any = None) -> Any: ...


# name -> (default, meaning); the README's settings table is checked against this.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "SHOPCRAWL_API_URL": (top.PRODUCTION_URL, "TOP router URL"),
    "SHOPCRAWL_APP_KEY": (None, "TOP app key (required)"),
    "SHOPCRAWL_APP_SECRET": (None, "TOP app secret (required, secret)"),
    "SHOPCRAWL_SESSION": (None, "the seller's session key (required, secret)"),
    "SHOPCRAWL_SIGN_METHOD": ("hmac-sha256", "md5, hmac (HMAC-MD5) or hmac-sha256"),
    "SHOPCRAWL_STORE": ("sqlite:///shopcrawl.db", "where items go: sqlite:///, mongodb:// or null:// URI"),
    "SHOPCRAWL_PAGE_CAP": (20000, "the API's cap on page_no*page_size; windows keep under it"),
    "SHOPCRAWL_PAGE_SIZE": (200, "listing page size (1-200)"),
    "SHOPCRAWL_DETAIL_BATCH": (20, "num_iids per detail call (1-20)"),
    "SHOPCRAWL_FETCH_DESC": (False, "also fetch the HTML description (desc)"),
    "SHOPCRAWL_MAX_BAN_WAIT": (600.0, "longest code-7 ban (s) worth waiting out; longer is fatal"),
    "SHOPCRAWL_QPS": (0.0, "calls per second this process sends at most (0 = no limit)"),
    "SHOPCRAWL_BACKOFF_BASE": (0.5, "first retry delay (s); doubles per retry"),
    "SHOPCRAWL_BACKOFF_MAX": (8.0, "longest retry delay (s)"),
    "SHOPCRAWL_PROGRESS_INTERVAL": (5.0, "seconds between progress lines (0 = off)"),
    "SHOPCRAWL_STORE_BATCH": (1000, "items per store write"),
    "SHOPCRAWL_STORE_FLUSH_SECONDS": (2.0, "longest time an item waits in the write buffer"),
    "SHOPCRAWL_REDIS_OUTAGE_SECONDS": (60.0, "longest Redis outage a worker waits out before it stops"),
}
SECRET_SETTINGS = ("SHOPCRAWL_APP_SECRET", "SHOPCRAWL_SESSION")


def _get(settings: SettingsLike, name: str) -> Any:
    value = settings.get(name)
    return DEFAULTS[name][0] if value is None or value == "" else value


def _number(settings: SettingsLike, name: str, kind: type, low: float, high: float) -> Any:
    raw = _get(settings, name)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return value


def _bool(settings: SettingsLike, name: str) -> bool:
    raw = _get(settings, name)
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Credentials:
    app_key: str
    secret: str = field(repr=False)
    session: str = field(repr=False)
    sign_method: str

    def __repr__(self) -> str:  # never show the secret or the session
        return f"Credentials(app_key={self.app_key!r}, sign_method={self.sign_method!r})"


@dataclass(frozen=True)
class ShopcrawlConfig:
    api_url: str
    store_uri: str
    page_cap: int
    page_size: int
    detail_batch: int
    fetch_desc: bool
    max_ban_wait: float
    qps: float
    backoff_base: float
    backoff_max: float
    progress_interval: float
    store_batch: int
    store_flush_seconds: float
    redis_outage_seconds: float

    @classmethod
    def from_settings(cls, settings: SettingsLike) -> ShopcrawlConfig:
        api_url = str(_get(settings, "SHOPCRAWL_API_URL"))
        if not api_url.startswith(("http://", "https://")):
            raise ConfigError(f"SHOPCRAWL_API_URL must be an http(s) URL, got {api_url!r}")
        page_size = _number(settings, "SHOPCRAWL_PAGE_SIZE", int, 1, top.PAGE_SIZE_MAX)
        page_cap = _number(settings, "SHOPCRAWL_PAGE_CAP", int, page_size, 10**9)
        return cls(
            api_url=api_url,
            store_uri=str(_get(settings, "SHOPCRAWL_STORE")),
            page_cap=page_cap,
            page_size=page_size,
            detail_batch=_number(settings, "SHOPCRAWL_DETAIL_BATCH", int, 1, top.DETAIL_BATCH_MAX),
            fetch_desc=_bool(settings, "SHOPCRAWL_FETCH_DESC"),
            max_ban_wait=_number(settings, "SHOPCRAWL_MAX_BAN_WAIT", float, 0, 10**7),
            qps=_number(settings, "SHOPCRAWL_QPS", float, 0, 10**6),
            backoff_base=_number(settings, "SHOPCRAWL_BACKOFF_BASE", float, 0, 600),
            backoff_max=_number(settings, "SHOPCRAWL_BACKOFF_MAX", float, 0, 3600),
            progress_interval=_number(settings, "SHOPCRAWL_PROGRESS_INTERVAL", float, 0, 86400),
            store_batch=_number(settings, "SHOPCRAWL_STORE_BATCH", int, 1, 100_000),
            store_flush_seconds=_number(settings, "SHOPCRAWL_STORE_FLUSH_SECONDS", float, 0.01, 3600),
            redis_outage_seconds=_number(settings, "SHOPCRAWL_REDIS_OUTAGE_SECONDS", float, 0, 86400),
        )


def credentials_from_settings(settings: SettingsLike) -> Credentials:
    """The TOP credentials, or a ConfigError naming every missing one."""
    missing = [
        name
        for name in ("SHOPCRAWL_APP_KEY", "SHOPCRAWL_APP_SECRET", "SHOPCRAWL_SESSION")
        if not str(settings.get(name) or "").strip()
    ]
    if missing:
        raise ConfigError(
            f"missing credentials: set {', '.join(missing)} (env var or -s NAME=VALUE) before crawling"
        )
    method = str(_get(settings, "SHOPCRAWL_SIGN_METHOD")).strip().lower()
    if method not in top.SIGN_METHODS:
        raise ConfigError(
            f"SHOPCRAWL_SIGN_METHOD must be one of {', '.join(top.SIGN_METHODS)}, got {method!r}"
        )
    return Credentials(
        app_key=str(settings.get("SHOPCRAWL_APP_KEY")).strip(),
        secret=str(settings.get("SHOPCRAWL_APP_SECRET")).strip(),
        session=str(settings.get("SHOPCRAWL_SESSION")).strip(),
        sign_method=method,
    )

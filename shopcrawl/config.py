"""Every shopcrawl setting parsed and checked in one place: defaults, types and errors.

``settings.py`` reads the environment; this module only reads Scrapy settings. A bad value
raises :class:`ConfigError` naming the setting, before any request is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from shopcrawl.platforms import APIS, PLATFORMS, get_dialect
from shopcrawl.platforms.base import Credentials
from shopcrawl.platforms.top import protocol as top

if TYPE_CHECKING:
    from shopcrawl.platforms.base import Dialect

__all__ = [
    "DEFAULTS",
    "AlertConfig",
    "ConfigError",
    "Credentials",
    "ShopcrawlConfig",
    "credentials_from_settings",
]


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says how to fix it."""


class SettingsLike(Protocol):
    def get(self, name: str, default: Any = None) -> Any: ...


# name -> (default, meaning); the README's settings table is checked against this.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "SHOPCRAWL_API": ("top", "the API dialect: top, 1688 or gateway (or -a api=)"),
    "SHOPCRAWL_PLATFORM": ("taobao", "the gateway's platform: taobao or 1688 (or -a platform=)"),
    "SHOPCRAWL_API_URL": (None, "the API's base URL (default: the chosen API's production URL)"),
    "SHOPCRAWL_APP_KEY": (None, "app key, or the gateway's key (required)"),
    "SHOPCRAWL_APP_SECRET": (None, "app secret, or the gateway's secret (required, secret)"),
    "SHOPCRAWL_SESSION": (
        None,
        "TOP session key or 1688 access_token (required but for the gateway; secret)",
    ),
    "SHOPCRAWL_CREDENTIALS": (
        None,
        "the credentials file `shopcrawl auth login` writes (default ~/.config/shopcrawl/credentials.json)",
    ),
    "SHOPCRAWL_OAUTH_URL": (
        None,
        "the OAuth authorise URL base (TOP: also /token); default https://oauth.taobao.com or "
        "https://auth.1688.com/oauth",
    ),
    "SHOPCRAWL_TOKEN_MIN_TTL": ("30m", "refresh a stored token before a crawl if it expires within this"),
    "SHOPCRAWL_SIGN_METHOD": ("hmac-sha256", "md5, hmac (HMAC-MD5) or hmac-sha256"),
    "SHOPCRAWL_STORE": ("sqlite:///shopcrawl.db", "where items go: sqlite:///, mongodb:// or null:// URI"),
    "SHOPCRAWL_PAGE_CAP": (None, "TOP: the cap on page_no*page_size (default 20000); windows keep under it"),
    "SHOPCRAWL_PAGE_SIZE": (None, "listing page size (default and most: TOP 200, 1688 20)"),
    "SHOPCRAWL_DETAIL_BATCH": (None, "items per detail call (default and most: TOP 20, 1688 and gateway 1)"),
    "SHOPCRAWL_FETCH_DESC": (False, "also fetch the HTML description (desc)"),
    "SHOPCRAWL_MAX_BAN_WAIT": (600.0, "longest code-7 ban (s) worth waiting out; longer is fatal"),
    "SHOPCRAWL_QPS": (0.0, "calls per second this process sends at most (0 = no limit)"),
    "SHOPCRAWL_BACKOFF_BASE": (0.5, "first retry delay (s); doubles per retry"),
    "SHOPCRAWL_BACKOFF_MAX": (8.0, "longest retry delay (s)"),
    "SHOPCRAWL_PROGRESS_INTERVAL": (5.0, "seconds between progress lines (0 = off)"),
    "SHOPCRAWL_STORE_BATCH": (1000, "items per store write"),
    "SHOPCRAWL_STORE_FLUSH_SECONDS": (2.0, "longest time an item waits in the write buffer"),
    "SHOPCRAWL_REDIS_OUTAGE_SECONDS": (60.0, "longest Redis outage a worker waits out before it stops"),
    "SHOPCRAWL_ALERT_WEBHOOK": (None, "URL alerts are POSTed to after a complete run (empty = no alerts)"),
    "SHOPCRAWL_ALERT_FORMAT": ("generic", "alert body: generic (JSON), dingtalk or wecom (robot markdown)"),
    "SHOPCRAWL_ALERT_SECRET": (None, "DingTalk robot signing secret (signed-URL mode; secret)"),
    "SHOPCRAWL_ALERT_PRICE_DROP": (None, "alert on a price drop of at least this percent (empty = off)"),
    "SHOPCRAWL_ALERT_PRICE_RISE": (None, "alert on a price rise of at least this percent (empty = off)"),
    "SHOPCRAWL_ALERT_ON": ("", "comma list of new, delisted, relisted, sold_out, restocked to alert on"),
    "SHOPCRAWL_JOB_RETRIES": (3, "fleet: times a failed shop job is retried before it is parked"),
    "SHOPCRAWL_JOB_BACKOFF": ("30s", "fleet: the first retry's delay; it doubles per retry (at most 1 h)"),
    "SHOPCRAWL_DETAIL_MAX_AGE": (
        "7d",
        "incremental crawls re-fetch a detail older than this: seconds, or e.g. 7d, 12h, 30m",
    ),
}
MODES = ("incremental", "full")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SECRET_SETTINGS = ("SHOPCRAWL_APP_SECRET", "SHOPCRAWL_SESSION", "SHOPCRAWL_ALERT_SECRET")


def _get(settings: SettingsLike, name: str, default: Any = None) -> Any:
    value = settings.get(name)
    if value is None or value == "":
        return DEFAULTS[name][0] if default is None else default
    return value


def _number(
    settings: SettingsLike, name: str, kind: type, low: float, high: float, default: Any = None
) -> Any:
    raw = _get(settings, name, default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return value


def parse_duration(raw: Any) -> float:
    """Seconds, given as a number or as a number with a unit: ``7d``, ``12h``, ``30m``, ``45s``.
    Raises ValueError."""
    text = str(raw).strip().lower()
    scale = _UNITS.get(text[-1:], 0) if text else 0
    return float(text[:-1] if scale else text) * (scale or 1)


def _duration(settings: SettingsLike, name: str) -> float:
    raw = _get(settings, name)
    try:
        value = parse_duration(raw)
    except ValueError:
        raise ConfigError(f"{name} must be seconds or a duration such as 7d, 12h, 30m; got {raw!r}") from None
    if not 0 <= value <= 10 * 365 * 86400:
        raise ConfigError(f"{name} must be between 0 and 10 years, got {raw!r}")
    return value


def job_retries(settings: SettingsLike) -> int:
    value: int = _number(settings, "SHOPCRAWL_JOB_RETRIES", int, 0, 1000)
    return value


def job_backoff(settings: SettingsLike) -> float:
    return _duration(settings, "SHOPCRAWL_JOB_BACKOFF")


def token_min_ttl(settings: SettingsLike) -> float:
    """``SHOPCRAWL_TOKEN_MIN_TTL`` in seconds."""
    return _duration(settings, "SHOPCRAWL_TOKEN_MIN_TTL")


def platform_for(api: str, platform: str) -> str:
    """The store's platform of a crawl: TOP crawls Taobao, 1688 crawls 1688, a gateway either."""
    if api == "gateway":
        return platform
    return "1688" if api == "1688" else "taobao"


def crawl_mode(value: str | None) -> str:
    """``-a mode=``: ``incremental`` (the default) or ``full``."""
    mode = "incremental" if value is None else str(value).strip().lower()
    if mode not in MODES:
        raise ConfigError(f"-a mode= must be one of {', '.join(MODES)}, got {value!r}")
    return mode


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
    detail_max_age: float = 7 * 86400.0
    api: str = "top"
    platform: str = "taobao"

    @property
    def dialect(self) -> Dialect:
        return get_dialect(self.api, self.platform, fetch_desc=self.fetch_desc)

    @classmethod
    def from_settings(
        cls, settings: SettingsLike, *, api: str | None = None, platform: str | None = None
    ) -> ShopcrawlConfig:
        """``api`` and ``platform`` (from ``-a api=`` / ``-a platform=``) win over the settings."""
        api = str(api or _get(settings, "SHOPCRAWL_API")).strip().lower()
        if api not in APIS:
            raise ConfigError(f"SHOPCRAWL_API (or -a api=) must be one of {', '.join(APIS)}, got {api!r}")
        platform = str(platform or _get(settings, "SHOPCRAWL_PLATFORM")).strip().lower()
        if platform not in PLATFORMS:
            choices = ", ".join(PLATFORMS)
            raise ConfigError(
                f"SHOPCRAWL_PLATFORM (or -a platform=) must be one of {choices}, got {platform!r}"
            )
        platform = platform_for(api, platform)
        dialect = get_dialect(api, platform)
        api_url = str(settings.get("SHOPCRAWL_API_URL") or dialect.production_url)
        if not api_url.startswith(("http://", "https://")):
            raise ConfigError(f"SHOPCRAWL_API_URL must be an http(s) URL, got {api_url!r}")
        page_size = _number(
            settings, "SHOPCRAWL_PAGE_SIZE", int, 1, dialect.page_size_max, dialect.page_size_max
        )
        page_cap = _number(settings, "SHOPCRAWL_PAGE_CAP", int, page_size, 10**9, dialect.page_cap_default)
        detail_max = dialect.detail_batch_max
        return cls(
            api=api,
            platform=platform,
            api_url=api_url,
            store_uri=str(_get(settings, "SHOPCRAWL_STORE")),
            page_cap=page_cap,
            page_size=page_size,
            detail_batch=_number(settings, "SHOPCRAWL_DETAIL_BATCH", int, 1, detail_max, detail_max),
            fetch_desc=_bool(settings, "SHOPCRAWL_FETCH_DESC"),
            max_ban_wait=_number(settings, "SHOPCRAWL_MAX_BAN_WAIT", float, 0, 10**7),
            qps=_number(settings, "SHOPCRAWL_QPS", float, 0, 10**6),
            backoff_base=_number(settings, "SHOPCRAWL_BACKOFF_BASE", float, 0, 600),
            backoff_max=_number(settings, "SHOPCRAWL_BACKOFF_MAX", float, 0, 3600),
            progress_interval=_number(settings, "SHOPCRAWL_PROGRESS_INTERVAL", float, 0, 86400),
            store_batch=_number(settings, "SHOPCRAWL_STORE_BATCH", int, 1, 100_000),
            store_flush_seconds=_number(settings, "SHOPCRAWL_STORE_FLUSH_SECONDS", float, 0.01, 3600),
            redis_outage_seconds=_number(settings, "SHOPCRAWL_REDIS_OUTAGE_SECONDS", float, 0, 86400),
            detail_max_age=_duration(settings, "SHOPCRAWL_DETAIL_MAX_AGE"),
        )


def credentials_from_settings(settings: SettingsLike, *, needs_session: bool = True) -> Credentials:
    """The API credentials, or a ConfigError naming every missing one."""
    required = ("SHOPCRAWL_APP_KEY", "SHOPCRAWL_APP_SECRET") + (
        ("SHOPCRAWL_SESSION",) if needs_session else ()
    )
    missing = [name for name in required if not str(settings.get(name) or "").strip()]
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
        session=str(settings.get("SHOPCRAWL_SESSION") or "").strip(),
        sign_method=method,
    )


def crawl_dialect(crawler: Any) -> Dialect:
    """The crawl's dialect: the spider's (``-a api=`` wins), else the settings'."""
    dialect = getattr(getattr(crawler, "spider", None), "dialect", None)
    return dialect if dialect is not None else ShopcrawlConfig.from_settings(crawler.settings).dialect


def crawl_config(crawler: Any) -> ShopcrawlConfig:
    """The crawl's config: the spider's (``-a api=`` wins), else the settings'."""
    config = getattr(getattr(crawler, "spider", None), "config", None)
    return config if isinstance(config, ShopcrawlConfig) else ShopcrawlConfig.from_settings(crawler.settings)


ALERT_FORMATS = ("generic", "dingtalk", "wecom")
ALERT_EVENTS = ("new", "delisted", "relisted", "sold_out", "restocked")


@dataclass(frozen=True)
class AlertConfig:
    """The alert rules. ``webhook`` empty: alerts are off. A price rule of ``None`` is off; ``0``
    alerts on any change of that direction. ``secret`` (DingTalk signing) is never logged or stored."""

    webhook: str = ""
    format: str = "generic"
    secret: str = field(default="", repr=False)
    price_drop: Decimal | None = None
    price_rise: Decimal | None = None
    events: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: SettingsLike) -> AlertConfig:
        webhook = str(settings.get("SHOPCRAWL_ALERT_WEBHOOK") or "").strip()
        if webhook and not webhook.startswith(("http://", "https://")):
            raise ConfigError(
                "SHOPCRAWL_ALERT_WEBHOOK must be an http(s) URL"
            )  # no value: it may hold a token
        fmt = str(_get(settings, "SHOPCRAWL_ALERT_FORMAT")).strip().lower()
        if fmt not in ALERT_FORMATS:
            raise ConfigError(
                f"SHOPCRAWL_ALERT_FORMAT must be one of {', '.join(ALERT_FORMATS)}, got {fmt!r}"
            )
        secret = str(settings.get("SHOPCRAWL_ALERT_SECRET") or "").strip()
        if secret and fmt != "dingtalk":
            raise ConfigError(
                "SHOPCRAWL_ALERT_SECRET signs DingTalk robot URLs: set SHOPCRAWL_ALERT_FORMAT=dingtalk"
            )
        raw_events = settings.get("SHOPCRAWL_ALERT_ON") or ""
        words = raw_events if isinstance(raw_events, list | tuple) else str(raw_events).split(",")
        events = frozenset(str(word).strip().lower() for word in words) - {""}
        unknown = sorted(events - set(ALERT_EVENTS))
        if unknown:
            raise ConfigError(
                f"SHOPCRAWL_ALERT_ON: unknown {', '.join(map(repr, unknown))}; use a comma list of "
                f"{', '.join(ALERT_EVENTS)}"
            )
        return cls(
            webhook=webhook,
            format=fmt,
            secret=secret,
            price_drop=_percent(settings, "SHOPCRAWL_ALERT_PRICE_DROP"),
            price_rise=_percent(settings, "SHOPCRAWL_ALERT_PRICE_RISE"),
            events=events,
        )


def _percent(settings: SettingsLike, name: str) -> Decimal | None:
    raw = settings.get(name)
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip().removesuffix("%").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{name} must be a percent such as 10 or 12.5, got {raw!r}") from None
    if not value.is_finite() or not 0 <= value <= 1000:
        raise ConfigError(f"{name} must be a percent between 0 and 1000, got {raw!r}")
    return value

"""Every sandbox option, its default and its check, in one frozen dataclass.

``server.py`` builds the command line from :data:`OPTION_HELP` and the field defaults, so the CLI, the
Python API (``create_app(SandboxConfig(...))``) and the documentation cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

# The path each API is served under; the first line the sandbox prints is the chosen one's base URL,
# the value for SHOPCRAWL_API_URL.
BASE_PATHS: dict[str, str] = {"top": "/router/rest", "1688": "/openapi", "gateway": ""}

OPTION_HELP: dict[str, str] = {
    "api": "which API's base URL to print first: " + ", ".join(BASE_PATHS) + " (the sandbox serves all)",
    "host": "interface to bind (loopback by default)",
    "port": "TCP port; 0 lets the OS pick one (the URL printed first on stdout has the real port)",
    "items": "number of on-sale items in the default synthetic shop",
    "seed": "seed of the default shop (extra shop k: seed + k) and of the fault draws (same seed, same shop)",
    "seller": "seller nick of every item of the default shop",
    "shops": "number of extra shops served besides the default one, named shop-001 ... shop-N; shop k has "
    "seed --seed + k and is built on its first use; TOP and 1688 select it with the session "
    "'<--session>-shop-NNN', the gateway with shop_id shop-NNN",
    "shop_items": "item counts of the --shops shops: MIN for shop-001, MAX for the last, spread "
    "geometrically between",
    "max_skus": "maximum SKUs per item (about 10%% of items have none)",
    "page_cap": "largest page_no*page_size accepted by taobao.items.onsale.get (code 41 above it)",
    "app_key": "the only app_key accepted (others get code 29)",
    "app_secret": "the app secret signatures are checked with",
    "session": "the fixed session / access token accepted on TOP and 1688 forever; tokens the OAuth "
    "endpoints issue are accepted too, until they expire (others get code 27 / 401)",
    "qps": "calls per second per (app_key, API method) before a code-7 ban; 0 means unlimited",
    "ban_seconds": "length of the code-7 ban started when --qps is exceeded",
    "rate_5xx": "probability (0..1) that an API call is answered HTTP 502/503",
    "rate_timeout": "probability (0..1) that an API call is held --timeout-delay seconds, then answered 504",
    "timeout_delay": "seconds a 'timeout' fault holds the request before answering 504",
    "rate_truncated": "probability (0..1) that a JSON body is cut at about half its length (HTTP 200)",
    "rate_garbled": "probability (0..1) that the body is replaced by non-JSON bytes (HTTP 200)",
    "rate_isp": "probability (0..1) of a code-15 isp.* remote service error",
    "invalid_items": "number of default-shop items whose data is deliberately invalid (bad price, HTML "
    "title, ...)",
    "isv_items": "number of default-shop items that make any taobao.items.seller.list.get call containing "
    "them fail with isv.item-data-error",
    "vanish_items": "number of default-shop items that are listed but omitted by every detail call, as if "
    "deleted between listing and detail",
    "hostile_items": "number of default-shop items whose detail records carry keys like $set, $where, a.b "
    "and a NUL, and whose SKU property names look like operators ($inc, x.y)",
    "call_log": "append one JSON line per API call to this file (t, method, outcome, ban_until)",
    "quota_ban_seconds": "if > 0, answer every API call with code 7 "
    "accesscontrol.limited-by-app-access-count and a ban of this many seconds",
    "log_level": "stderr log level (DEBUG logs every call)",
    "gateway_page_size": "items per item_search_shop page (the gateway's page size, stated in each answer)",
    "gateway_max_pages": "the gateway's depth cap: pages one item_search_shop query serves (page_count)",
    "latency_ms": "milliseconds every API call is held before it is handled, modelling the network "
    "(an idle wait: no CPU is spent; control endpoints are not held)",
    "token_ttl": "lifetime in seconds of the TOP sessions and 1688 access tokens the OAuth endpoints issue",
    "refresh_ttl": "lifetime in seconds of the refresh tokens the OAuth endpoints issue; 0: none are issued "
    "(a TOP session that cannot be refreshed, re_expires_in 0)",
}

_RATES = ("rate_5xx", "rate_timeout", "rate_truncated", "rate_garbled", "rate_isp")
_NON_NEGATIVE = (
    "port",
    "items",
    "max_skus",
    "shops",
    "qps",
    "ban_seconds",
    "timeout_delay",
    "invalid_items",
    "isv_items",
    "vanish_items",
    "hostile_items",
    "quota_ban_seconds",
    "latency_ms",
    "refresh_ttl",
)


@dataclass(frozen=True)
class SandboxConfig:
    api: str = "top"
    host: str = "127.0.0.1"
    port: int = 0
    items: int = 3000
    seed: int = 1
    seller: str = "demo"
    shops: int = 0
    shop_items: str = "200-5000"
    max_skus: int = 5
    page_cap: int = 20000
    app_key: str = "sandbox-app-key"
    app_secret: str = "sandbox-app-secret"
    session: str = "sandbox-session"
    qps: int = 0
    ban_seconds: float = 2.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0
    timeout_delay: float = 30.0
    rate_truncated: float = 0.0
    rate_garbled: float = 0.0
    rate_isp: float = 0.0
    invalid_items: int = 0
    isv_items: int = 0
    vanish_items: int = 0
    hostile_items: int = 0
    call_log: str | None = None
    quota_ban_seconds: int = 0
    log_level: str = "INFO"
    gateway_page_size: int = 40
    gateway_max_pages: int = 50
    latency_ms: float = 0.0
    token_ttl: float = 86400.0
    refresh_ttl: float = 15552000.0

    def __post_init__(self) -> None:
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")
        for name in _RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{_flag(name)} must be a probability in 0..1, got {getattr(self, name)}")
        if sum(getattr(self, name) for name in _RATES) > 1.0 + 1e-9:
            raise ValueError("the --rate-* options must sum to at most 1")
        if self.gateway_page_size < 1 or self.gateway_max_pages < 1:
            raise ValueError("--gateway-page-size and --gateway-max-pages must be >= 1")
        if self.page_cap < 1:
            raise ValueError(f"--page-cap must be >= 1, got {self.page_cap}")
        if self.qps > 0 and self.ban_seconds <= 0:
            raise ValueError("--ban-seconds must be > 0 when --qps is set")
        special = self.invalid_items + self.isv_items + self.vanish_items + self.hostile_items
        if special > self.items:
            raise ValueError(
                "--invalid-items, --isv-items, --vanish-items and --hostile-items exceed --items"
            )
        if not self.token_ttl > 0 or not math.isfinite(self.token_ttl):
            raise ValueError(f"--token-ttl must be > 0, got {self.token_ttl}")
        if not math.isfinite(self.refresh_ttl):
            raise ValueError(f"--refresh-ttl must be finite, got {self.refresh_ttl}")
        if self.api not in BASE_PATHS:
            raise ValueError(f"--api must be one of {', '.join(BASE_PATHS)}, got {self.api!r}")
        for name in ("app_key", "app_secret", "session", "seller"):
            if not getattr(self, name).strip():
                raise ValueError(f"--{_flag(name)} must not be empty")
        item_range(self.shop_items)
        if self.seller in shop_names(self.shops):
            raise ValueError(f"--seller {self.seller!r} is the name of one of the --shops shops")

    def shop_sizes(self) -> list[int]:
        """The item count of each extra shop, shop-001 first."""
        low, high = item_range(self.shop_items)
        count = self.shops
        if count == 1:
            return [low]
        return [round(low * (high / low) ** ((k - 1) / (count - 1))) for k in range(1, count + 1)]


def shop_names(count: int) -> list[str]:
    """``shop-001`` ... ``shop-<count>``: three digits, more when ``count`` needs them."""
    width = max(3, len(str(count)))
    return [f"shop-{k:0{width}d}" for k in range(1, count + 1)]


def item_range(text: str) -> tuple[int, int]:
    """``(MIN, MAX)`` of a ``--shop-items`` value ``MIN-MAX``; ``ValueError`` unless 1 <= MIN <= MAX."""
    low, dash, high = text.strip().partition("-")
    if not (dash and low.isascii() and low.isdigit() and high.isascii() and high.isdigit()):
        raise ValueError(f"--shop-items must be MIN-MAX, two whole numbers such as 200-5000, got {text!r}")
    bounds = int(low), int(high)
    if bounds[0] < 1 or bounds[1] < bounds[0]:
        raise ValueError(f"--shop-items MIN-MAX needs 1 <= MIN <= MAX, got {text!r}")
    return bounds


def _flag(name: str) -> str:
    return name.replace("_", "-")


def option_names() -> list[str]:
    return [f.name for f in fields(SandboxConfig)]

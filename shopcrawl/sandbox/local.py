"""How a crawl process is pointed at a local sandbox: shared by `shopcrawl demo`, tests, benchmarks."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# The sandbox's default credentials (see `shopcrawl sandbox --help`); for local use only.
SANDBOX_CREDENTIALS = {
    "SHOPCRAWL_APP_KEY": "sandbox-app-key",
    "SHOPCRAWL_APP_SECRET": "sandbox-app-secret",
    "SHOPCRAWL_SESSION": "sandbox-session",
}


def crawl_env(url: str, store_uri: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its SHOPCRAWL_* values, aimed at the sandbox at ``url``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHOPCRAWL_")},
        **SANDBOX_CREDENTIALS,
        "SHOPCRAWL_API_URL": url,
        "SHOPCRAWL_STORE": store_uri,
        "SCRAPY_SETTINGS_MODULE": "shopcrawl.settings",
        **(overrides or {}),
    }


def crawl_command(seller: str, settings: Mapping[str, object] | None = None, *extra: str) -> list[str]:
    """``python -m scrapy crawl shop -a seller_id=SELLER -s K=V ... EXTRA``."""
    args = [sys.executable, "-m", "scrapy", "crawl", "shop", "-a", f"seller_id={seller}"]
    for key, value in (settings or {}).items():
        args += ["-s", f"{key}={value}"]
    return [*args, *extra]

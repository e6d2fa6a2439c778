"""``python -m shopcrawl.sandbox`` / ``shopcrawl sandbox``: run the API emulator until SIGTERM/SIGINT.

The first line on stdout is the ``--api`` API's base URL (TOP: ``http://127.0.0.1:PORT/router/rest``),
the value for ``SHOPCRAWL_API_URL``, printed and flushed
only once the socket listens, so a parent process can use it as the readiness signal. Everything else
goes to stderr through :mod:`logging`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from dataclasses import fields

from aiohttp import web

from .app import create_app
from .config import BASE_PATHS, OPTION_HELP, SandboxConfig, shop_names

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopcrawl sandbox",
        description="Local emulator of the Taobao TOP router/rest API (items.onsale.get, "
        "items.seller.list.get), the 1688 product API and aggregator gateways, with a synthetic shop, "
        "rate limits, fault injection and both platforms' OAuth flows (/oauth/top, /oauth/1688).",
    )
    for field in fields(SandboxConfig):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        kind = field.type if isinstance(field.type, type) else _TYPES[str(field.type)]
        helptext = OPTION_HELP[field.name] + " (default: %(default)s)"
        if field.name == "log_level":
            parser.add_argument(
                flag, default=default, choices=("DEBUG", "INFO", "WARNING", "ERROR"), help=helptext
            )
        elif field.name == "api":
            parser.add_argument(flag, default=default, choices=tuple(BASE_PATHS), help=helptext)
        else:
            metavar = _METAVARS.get(field.name, field.name.upper())
            parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=helptext)
    return parser


_METAVARS = {"token_ttl": "SECONDS", "refresh_ttl": "SECONDS", "shops": "N", "shop_items": "MIN-MAX"}
_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "str | None": str}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = SandboxConfig(**vars(args))
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(
        stream=sys.stderr, level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(serve(config))
    except OSError as error:
        logger.error("sandbox cannot start on %s:%s: %s", config.host, config.port, error)
        return 1


async def serve(config: SandboxConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before the URL is printed: a parent may stop us at once
        loop.add_signal_handler(signum, stop.set)
    app = create_app(config)
    # The shop is millions of long-lived objects; keep the cyclic GC from rescanning them.
    gc.collect()
    gc.freeze()
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        print(f"http://{host}:{port}{BASE_PATHS[config.api]}", flush=True)
        logger.info(
            "sandbox listening on http://%s:%s: %d items (seed %d), app_key %s",
            host,
            port,
            config.items,
            config.seed,
            config.app_key,
        )
        if config.shops:
            sizes, names = config.shop_sizes(), shop_names(config.shops)
            logger.info(
                "%d more shops, %s ... %s (%d to %d items, %d in all), each built on its first use",
                config.shops,
                names[0],
                names[-1],
                sizes[0],
                sizes[-1],
                sum(sizes),
            )
        logger.info(
            "OAuth: TOP at http://%s:%s/oauth/top (authorize, token), 1688 at /oauth/1688/authorize and "
            "/openapi/param2/1/system.oauth2/ (getToken, postponeToken); tokens live %.0f s, refresh %.0f s",
            host,
            port,
            config.token_ttl,
            config.refresh_ttl,
        )
        await stop.wait()
        logger.info("sandbox stopping")
    finally:
        await runner.cleanup()
    return 0

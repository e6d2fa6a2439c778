"""The API dialects shopcrawl speaks, one package each, behind :mod:`shopcrawl.platforms.base`.

``SHOPCRAWL_API`` (or ``-a api=``) picks one: ``top`` (your own Taobao shop), ``1688`` (your own 1688
shop, the AOP open platform) or ``gateway`` (any Taobao or 1688 shop through an
``item_search_shop`` gateway; ``SHOPCRAWL_PLATFORM`` or ``-a platform=`` picks the platform).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopcrawl.platforms.base import Dialect

APIS = ("top", "1688", "gateway")
PLATFORMS = ("taobao", "1688")


def get_dialect(api: str, platform: str = "taobao", *, fetch_desc: bool = False) -> Dialect:
    """The dialect named ``api`` (one of :data:`APIS`); ``platform`` matters for the gateway only."""
    if api == "top":
        from shopcrawl.platforms.top.dialect import TopDialect

        return TopDialect(fetch_desc=fetch_desc)
    if api == "1688":
        from shopcrawl.platforms.aop.dialect import AopDialect

        return AopDialect(fetch_desc=fetch_desc)
    if api == "gateway":
        from shopcrawl.platforms.gateway import GatewayDialect

        return GatewayDialect(platform)
    raise ValueError(f"unknown API {api!r}: use one of {', '.join(APIS)}")

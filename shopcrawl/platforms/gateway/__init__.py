"""``item_search_shop`` / ``item_get`` gateways (api-protocols.md §3, §7.2): any Taobao or 1688 shop."""

from shopcrawl.platforms.gateway.dialect import GatewayDialect

__all__ = ["GatewayDialect"]

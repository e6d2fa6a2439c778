"""1688 open platform (AOP): the wire protocol (:mod:`.protocol`), its product records (:mod:`.items`)
and the dialect the spider and middlewares use (:mod:`.dialect`)."""

from shopcrawl.platforms.aop.protocol import (
    DETAIL_API,
    LISTING_API,
    NAMESPACE,
    PAGE_SIZE_MAX,
    PRODUCTION_URL,
    SECRET_PARAMS,
    SYSTEM_PARAMS,
    classify,
    decode,
    fatal_hint,
    format_time,
    loads,
    parse_time,
    sign,
    signed_params,
    signing_message,
    timestamp_ms,
    url_path,
)

__all__ = [
    "DETAIL_API",
    "LISTING_API",
    "NAMESPACE",
    "PAGE_SIZE_MAX",
    "PRODUCTION_URL",
    "SECRET_PARAMS",
    "SYSTEM_PARAMS",
    "classify",
    "decode",
    "fatal_hint",
    "format_time",
    "loads",
    "parse_time",
    "sign",
    "signed_params",
    "signing_message",
    "timestamp_ms",
    "url_path",
]

"""Taobao Open Platform (TOP) ``router/rest`` wire protocol: signing, envelopes, error classes.

Pure functions, no Scrapy imports. Protocol reference: shared api-protocols.md §1.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from shopcrawl.platforms.base import ApiError, EnvelopeError, ErrorClass

PRODUCTION_URL = "https://gw.api.taobao.com/router/rest"
SIGN_METHODS = ("md5", "hmac", "hmac-sha256")
API_VERSION = "2.0"
GMT8 = timezone(timedelta(hours=8), "GMT+8")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

LISTING_METHOD = "taobao.items.onsale.get"
DETAIL_METHOD = "taobao.items.seller.list.get"
LISTING_FIELDS = (
    "num_iid",
    "title",
    "price",
    "num",
    "modified",
    "sold_quantity",
    "approve_status",
    "list_time",
)
DETAIL_FIELDS = (
    "num_iid",
    "title",
    "nick",
    "cid",
    "price",
    "num",
    "modified",
    "list_time",
    "approve_status",
    "outer_id",
    "pic_url",
    "sku",
    "item_img",
)
PAGE_SIZE_MAX = 200
DETAIL_BATCH_MAX = 20

# The system parameters a client adds at send time (§1.2); a queued request carries none of them.
SYSTEM_PARAMS = frozenset(
    {
        "app_key",
        "timestamp",
        "v",
        "format",
        "sign_method",
        "session",
        "sign",
        "partner_id",
        "target_app_key",
        "simplify",
    }
)
SECRET_PARAMS = frozenset({"session", "sign"})


def format_timestamp(moment: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in GMT+8, whatever the host's time zone (§4.1)."""
    if moment.tzinfo is None:
        raise ValueError("format_timestamp needs a timezone-aware datetime")
    return moment.astimezone(GMT8).strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime:
    """Parse a TOP date string (GMT+8) into an aware datetime."""
    # The usual shape, exactly 'yyyy-MM-dd HH:mm:ss' in ASCII digits, through the C parser (strptime
    # costs ~10x more); anything else goes to strptime, which decides what is accepted.
    if len(value) == 19 and value[4] == value[7] == "-" and value[10] == " " and value.isascii():
        digits = value[:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16] + value[17:]
        if value[13] == value[16] == ":" and digits.isdigit():
            return datetime.fromisoformat(value).replace(tzinfo=GMT8)
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=GMT8)


def signing_string(params: Mapping[str, str]) -> str:
    """Sorted ``k1v1k2v2...`` over every non-empty param except ``sign`` (§1.3 steps 1-4)."""
    return "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and k and v.strip())


def sign(params: Mapping[str, str], secret: str, sign_method: str) -> str:
    """The upper-case hex signature of ``params`` for ``sign_method`` (§1.3)."""
    message = signing_string(params).encode("utf-8")
    key = secret.encode("utf-8")
    if sign_method == "md5":
        return hashlib.md5(key + message + key).hexdigest().upper()
    if sign_method == "hmac":
        return hmac.new(key, message, hashlib.md5).hexdigest().upper()
    if sign_method == "hmac-sha256":
        return hmac.new(key, message, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown sign_method {sign_method!r}; use one of {', '.join(SIGN_METHODS)}")


def signed_params(
    business: Mapping[str, str],
    *,
    app_key: str,
    secret: str,
    session: str,
    sign_method: str,
    now: datetime,
) -> dict[str, str]:
    """Business params plus every system param and the signature, empty values dropped."""
    params = {k: v for k, v in business.items() if v.strip() and k not in SYSTEM_PARAMS}
    params.update(
        app_key=app_key,
        session=session,
        timestamp=format_timestamp(now),
        v=API_VERSION,
        format="json",
        sign_method=sign_method,
    )
    params["sign"] = sign(params, secret, sign_method)
    return params


def response_root(method: str) -> str:
    """``taobao.items.onsale.get`` -> ``items_onsale_get_response`` (§1.4)."""
    name = method.removeprefix("taobao.")
    return name.replace(".", "_") + "_response"


FATAL_HINTS: dict[str, str] = {
    "11": "the app lacks permission for this API; grant the API package to SHOPCRAWL_APP_KEY",
    "24": "the request was sent unsigned; check SHOPCRAWL_SIGN_METHOD",
    "25": "the signature was refused; check SHOPCRAWL_APP_SECRET and SHOPCRAWL_SIGN_METHOD",
    "26": "no session was sent; set SHOPCRAWL_SESSION",
    "27": "the session is invalid or expired; run shopcrawl auth login --api top (or set SHOPCRAWL_SESSION)",
    "28": "no app key was sent; set SHOPCRAWL_APP_KEY",
    "29": "the app key is unknown; check SHOPCRAWL_APP_KEY",
    "31": "the timestamp was refused; check this machine's clock",
    "12": "the seller's authorisation lacks this permission; re-authorise with the needed scope",
    "21": "the API method is missing; this is a shopcrawl bug",
    "22": "the API method is unknown at this endpoint; check SHOPCRAWL_API_URL",
    "33": "the API version is refused; check SHOPCRAWL_API_URL",
}
# Codes that are never worth retrying and do not concern a single item.
_FATAL_CODES = frozenset(FATAL_HINTS) | {"13", "23", "30", "32", "34", "40", "41", "42", "43"}
_RETRY_CODES = frozenset({"8", "10", "520"})


def classify(error: ApiError, *, max_ban_wait: float) -> ErrorClass:
    """Map a TOP error envelope to what the crawl does about it."""
    if error.code == "7" or error.sub_code.startswith("accesscontrol."):
        seconds = error.ban_seconds
        if seconds is None:
            return ErrorClass.RETRY
        return ErrorClass.FATAL if seconds > max_ban_wait else ErrorClass.BAN
    if error.code == "27" or (error.code == "53" and error.sub_code == "invalid-sessionkey"):
        return ErrorClass.AUTH  # an invalid or expired session (§8.1 A3)
    if error.code in _FATAL_CODES:
        return ErrorClass.FATAL
    if error.sub_code.startswith("isp.") or error.code in _RETRY_CODES:
        return ErrorClass.RETRY
    if error.sub_code.startswith("isv."):
        return ErrorClass.RECORD
    return ErrorClass.RETRY


def fatal_hint(error: ApiError, *, max_ban_wait: float) -> str:
    if error.code == "7":
        return (
            f"the app's call quota is banned for {error.ban_seconds} s, longer than "
            f"SHOPCRAWL_MAX_BAN_WAIT={max_ban_wait:g}; wait, raise the quota, or raise that setting"
        )
    return FATAL_HINTS.get(error.code, "the API refused the request; see the error text")


def unwrap(body: Any, method: str) -> tuple[dict[str, Any] | None, ApiError | None]:
    """Split a decoded JSON body into (payload, error); exactly one is not None.

    Accepts both the wrapped (``xxx_response``) and the ``simplify=true`` shape.
    """
    if not isinstance(body, dict):
        raise EnvelopeError(f"expected a JSON object, got {type(body).__name__}")
    if "error_response" in body:
        raw = body["error_response"]
        if not isinstance(raw, dict):
            raise EnvelopeError("error_response is not an object")
        code = str(raw.get("code", "")).strip()
        if not code.lstrip("-").isdigit() or not code.isascii():
            raise EnvelopeError(f"error_response.code is not a number: {raw.get('code')!r}")
        return None, ApiError(
            code=str(int(code)),
            msg=str(raw.get("msg", "")),
            sub_code=str(raw.get("sub_code", "")),
            sub_msg=str(raw.get("sub_msg", "")),
            request_id=str(raw.get("request_id", "")),
        )
    root = response_root(method)
    payload = body.get(root, body)
    if not isinstance(payload, dict):
        raise EnvelopeError(f"{root} is not an object")
    return payload, None


def unwrap_list(payload: Mapping[str, Any], list_name: str, item_name: str) -> list[Any]:
    """``items: {item: [...]}`` (wrapped) or ``items: [...]`` (simplified); absent means empty."""
    value = payload.get(list_name)
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get(item_name, [])
    if not isinstance(value, list):
        raise EnvelopeError(f"{list_name} is neither a list nor a wrapped list")
    return value

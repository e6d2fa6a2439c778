"""1688 open platform (AOP, ``gw.open.1688.com/openapi``) wire protocol: signature, decoding, errors.

Pure functions, no Scrapy imports. Protocol reference: shared api-protocols.md §2 and the shapes
shopcrawl targets where §2 is unconfirmed, §7.1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from shopcrawl.platforms.base import ApiError, EnvelopeError, ErrorClass, HttpStatus

PRODUCTION_URL = "https://gw.open.1688.com/openapi"
API_VERSION = "1"
NAMESPACE = "com.alibaba.product"
LISTING_API = "alibaba.product.list.get"
DETAIL_API = "alibaba.product.get"
PAGE_SIZE_MAX = 20
DETAIL_BATCH_MAX = 1
SOURCE = "1688"
MAX_SKEW_SECONDS = 600

# The params a client adds at send time (§2.2); a queued request carries none of them.
SYSTEM_PARAMS = frozenset({"access_token", "_aop_timestamp", "_aop_signature", "_aop_datePattern"})
SECRET_PARAMS = frozenset({"access_token", "_aop_signature"})

_TIME_RE = re.compile(r"^([0-9]{14})([0-9]{3})?([+-][0-9]{4})$")


def url_path(api: str, app_key: str, *, namespace: str = NAMESPACE, version: str = API_VERSION) -> str:
    """The signed path: ``param2/1/<namespace>/<api>/<appKey>`` (no leading slash, no ``openapi/``)."""
    return f"param2/{version}/{namespace}/{api}/{app_key}"


def signing_message(path: str, params: Mapping[str, str]) -> str:
    """``path`` + the sorted ``key+value`` strings (sorted as strings, not by key: §2.3 step 3);
    ``_aop_signature`` and empty values are left out."""
    pairs = sorted(f"{k}{v}" for k, v in params.items() if k != "_aop_signature" and k and v)
    return path + "".join(pairs)


def sign(path: str, params: Mapping[str, str], secret: str) -> str:
    """``_aop_signature``: upper-case hex HMAC-SHA1 of :func:`signing_message` keyed by the app secret."""
    message = signing_message(path, params).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha1).hexdigest().upper()


def timestamp_ms(now: datetime) -> str:
    """``_aop_timestamp``: epoch milliseconds."""
    if now.tzinfo is None:
        raise ValueError("timestamp_ms needs a timezone-aware datetime")
    return str(int(now.timestamp() * 1000))


def signed_params(
    business: Mapping[str, str], *, path: str, secret: str, access_token: str, now: datetime
) -> dict[str, str]:
    """Business params (empty ones dropped) plus ``access_token``, ``_aop_timestamp`` and the signature."""
    params = {k: v for k, v in business.items() if v and k not in SYSTEM_PARAMS}
    params.update(access_token=access_token, _aop_timestamp=timestamp_ms(now))
    params["_aop_signature"] = sign(path, params, secret)
    return params


def parse_time(value: str) -> datetime:
    """``20261101120000000+0800`` (or the 14-digit ``20121222222222+0800``) -> an aware datetime."""
    match = _TIME_RE.match(value.strip())
    if match is None:
        raise ValueError(f"not a yyyyMMddHHmmss[SSS]+zzzz time: {value!r}")
    digits, millis, zone = match.groups()
    sign_ = -1 if zone[0] == "-" else 1
    offset = timezone(sign_ * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
    moment = datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=offset)
    return moment + timedelta(milliseconds=int(millis or 0))


def format_time(moment: datetime) -> str:
    """The inverse of :func:`parse_time` (17 digits plus zone)."""
    if moment.tzinfo is None:
        raise ValueError("format_time needs a timezone-aware datetime")
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    zone = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}" + zone


def loads(body: bytes | str) -> Any:
    """JSON with every non-integer number as an exact :class:`~decimal.Decimal` (never a float)."""
    return json.loads(body, parse_float=Decimal)


def decode(status: int, body: bytes) -> tuple[dict[str, Any] | None, ApiError | None]:
    """(payload, None) or (None, error) for one AOP answer.

    - HTTP 5xx, or any other non-200 whose body is not a gateway error: :class:`HttpStatus`.
    - A gateway error ``{"error_code", "error_message", "request_id"}`` (HTTP 4xx): an ApiError
      whose code is ``error_code`` (``"gw.QpsOverLimit"``, ``"401"``, ...).
    - HTTP 200 ``{"success": false, "errorCode", "errorMsg"}``: a business error.
    - HTTP 200 ``{"success": true, ...}``: the payload.
    Anything else raises :class:`EnvelopeError` (bad JSON raises ``ValueError``).
    """
    if status >= 500:
        raise HttpStatus(status)
    if status != 200:
        try:
            value = loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HttpStatus(status) from None
        if not isinstance(value, dict) or "error_code" not in value:
            raise HttpStatus(status)
        return None, gateway_error(value)
    value = loads(body)
    if not isinstance(value, dict):
        raise EnvelopeError(f"expected a JSON object, got {type(value).__name__}")
    if "error_code" in value:
        return None, gateway_error(value)
    success = value.get("success")
    if success is True:
        return value, None
    if success is False:
        code = value.get("errorCode")
        if not isinstance(code, str) or not code.strip():
            raise EnvelopeError(f"success is false but errorCode is not a string: {code!r:.60}")
        return None, ApiError(
            code=code.strip(),
            msg=str(value.get("errorMsg") or value.get("errorMessage") or ""),
            request_id=str(value.get("requestId") or value.get("request_id") or ""),
            source=SOURCE,
        )
    raise EnvelopeError(f"no boolean 'success' in the answer (keys: {', '.join(sorted(value))[:120]})")


def gateway_error(value: Mapping[str, Any]) -> ApiError:
    code = value.get("error_code")
    if isinstance(code, bool) or not isinstance(code, str | int) or not str(code).strip():
        raise EnvelopeError(f"error_code is neither a string nor a number: {code!r:.60}")
    return ApiError(
        code=str(code).strip(),
        msg=str(value.get("error_message") or ""),
        request_id=str(value.get("request_id") or ""),
        source=SOURCE,
    )


UNAUTHORISED = "401"
QPS_OVER_LIMIT = "gw.QpsOverLimit"
FATAL_HINTS: dict[str, str] = {
    "gw.SignatureInvalid": "the signature was refused; check SHOPCRAWL_APP_SECRET (and SHOPCRAWL_APP_KEY)",
    "gw.ParamMissing": "a required parameter is missing; check SHOPCRAWL_SESSION and SHOPCRAWL_APP_KEY",
    "gw.APIUnsupported": "the API is unknown at this endpoint; check SHOPCRAWL_API_URL (…/openapi)",
    "gw.APIACLDecline": "the app may not call this API; grant it to SHOPCRAWL_APP_KEY in the 1688 console",
    "gw.TimestampInvalid": "the _aop_timestamp was refused; check this machine's clock",
    "gw.AppKeyNotFound": "the app key is unknown; check SHOPCRAWL_APP_KEY",
    "gw.NoUsageLeftError": "the app's call quota is spent; wait for it to renew or raise it in the console",
    UNAUTHORISED: "the access_token is missing, wrong or expired; run shopcrawl auth login --api 1688 "
    "(or set SHOPCRAWL_SESSION)",
}


def is_gateway_code(code: str) -> bool:
    return code.startswith("gw.") or code.isdigit()


def classify(error: ApiError) -> ErrorClass:
    """Gateway errors stop the crawl but for the QPS limit; a business error in HTTP 200
    (``PRODUCT_NOT_EXIST``, ...) is about the one item it names.

    The QPS limit is a ban of unstated length (``ban_seconds`` None: the crawl holds every call to
    that API for a second, then resends): retrying each refused call on its own backoff spent its
    retries while the other calls kept the limit tripped, and items were given up."""
    if error.code == QPS_OVER_LIMIT:
        return ErrorClass.BAN
    if error.code == UNAUTHORISED:
        return ErrorClass.AUTH  # expired or wrong: the stored expiry tells which (§8.2 B2)
    if is_gateway_code(error.code):
        return ErrorClass.FATAL
    return ErrorClass.RECORD


def fatal_hint(error: ApiError) -> str:
    return FATAL_HINTS.get(error.code, "the 1688 gateway refused the request; see the error text")

"""Request validation in the gateway's order: system params, credentials, then business params.

Codes and msgs follow §1.5 of the protocol doc. Choices it leaves open [unconfirmed]:

- Empty or all-whitespace params are treated as absent (they are also left out of the signature).
- A param given both in the query string and the form body: the query-string value wins.
- ``timestamp``: ``yyyy-MM-dd HH:mm:ss`` read as GMT+8, or all digits read as epoch milliseconds; more
  than 600 s from the server clock either way is code 31 (the doc's code for an invalid timestamp).
- ``v``: a version number other than ``2.0`` is 34 "Unsupported Version"; anything else 33.
- ``format`` other than ``json``/``xml`` is 23 "Invalid Format" (checked after the version).
- ``sign_method`` absent means ``md5`` (the old default); an unknown one is 25 "Invalid Signature" with
  ``sub_code`` ``isv.invalid-sign-method``. The signature must be the exact upper-case hex digest.
- Business errors: 40 "Missing Required Arguments" with ``sub_code`` ``isv.missing-parameter``; 41
  "Invalid Arguments" with ``sub_code`` ``isv.invalid-parameter`` and a ``sub_msg`` naming the param.
  An unknown name in ``fields`` (e.g. ``skus`` for ``sku``) is 41, not silently ignored.
- The paging cap: ``page_no*page_size`` above the cap is 41 ``isv.invalid-parameter`` with ``sub_msg``
  ``page_no*page_size must not exceed 20000 (page_no=101, page_size=200);
  请细化搜索条件，例如根据修改时间分段获取商品`` (one line; wording after the API doc's page_no note,
  which says the API "will report an error" past the cap; the real sub_code/sub_msg are unknown).
- ``num_iids``: duplicates are returned once, in first-seen order; more than 20 distinct ids is 41.
- ``session``: ``--session`` is always accepted (and, with ``--shops``, ``<--session>-shop-NNN``, which
  ``Sandbox`` passes as live through ``issued``); a session the OAuth endpoints issued is accepted until
  it expires, then answered 27 ``Invalid session:session-expired`` / ``session-expired`` with no
  ``sub_msg`` (the body §8.1 A3 quotes); any other value keeps 27 ``invalid-sessionkey``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

from shopcrawl.platforms.top import API_VERSION, GMT8, SIGN_METHODS, TIME_FORMAT, sign

from .render import DETAIL_FIELDS, LISTING_FIELDS
from .shop import ORDER_COLUMNS

MAX_SKEW_SECONDS = 600
PAGE_SIZE_MAX = 200
NUM_IIDS_MAX = 20
INVALID_SESSION_MSG = "非法或过期的SessionKey参数，请使用有效的SessionKey参数"
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")

TokenState = Literal["live", "expired", "unknown"]
# The state of an issued token at a moment: ``(token, now) -> state`` (see ``oauth.TokenStore``).
SessionLookup = Callable[[str, float], TokenState]


class TopError(Exception):
    """An ``error_response``; ``outcome`` is what the call log and stats record."""

    def __init__(
        self,
        code: int,
        msg: str,
        sub_code: str = "",
        sub_msg: str = "",
        *,
        outcome: str | None = None,
        ban_until: float | None = None,
    ) -> None:
        super().__init__(f"{code} {msg} {sub_code} {sub_msg}".strip())
        self.code = code
        self.msg = msg
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        self.outcome = outcome or f"error:{code}"
        self.ban_until = ban_until

    def as_dict(self, request_id: str) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "msg": self.msg}
        if self.sub_code:
            body["sub_code"] = self.sub_code
        if self.sub_msg:
            body["sub_msg"] = self.sub_msg
        body["request_id"] = request_id
        return body


def missing(name: str) -> TopError:
    return TopError(
        40, "Missing Required Arguments", "isv.missing-parameter", f"Missing required arguments:{name}"
    )


def invalid(name: str, why: str) -> TopError:
    return TopError(41, "Invalid Arguments", "isv.invalid-parameter", f"Invalid arguments:{name} ({why})")


@dataclass(frozen=True)
class Credentials:
    app_key: str
    app_secret: str
    session: str


@lru_cache(maxsize=4096)
def parse_timestamp(value: str) -> float | None:
    """Epoch seconds of a TOP timestamp (GMT+8 date string or epoch ms), or None if neither."""
    if value.isascii() and value.isdigit():
        return int(value) / 1000.0
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=GMT8).timestamp()
    except ValueError:
        return None


def check_system(
    params: Mapping[str, str], creds: Credentials, now: float, issued: SessionLookup | None = None
) -> None:
    """Raise the first ``TopError`` the gateway would answer for these system params; ``issued`` tells
    the state of a session that is not ``creds.session`` (without it, every other session is unknown)."""
    if "method" not in params:
        raise TopError(21, "Missing Method")
    if "sign" not in params:
        raise TopError(24, "Missing Signature")
    if "app_key" not in params:
        raise TopError(28, "Missing App Key")
    if params["app_key"] != creds.app_key:
        raise TopError(29, "Invalid App Key")
    if "timestamp" not in params:
        raise TopError(30, "Missing Timestamp")
    moment = parse_timestamp(params["timestamp"])
    if moment is None:
        raise TopError(31, "Invalid Timestamp", sub_msg="timestamp must be yyyy-MM-dd HH:mm:ss (GMT+8)")
    if abs(moment - now) > MAX_SKEW_SECONDS:
        raise TopError(
            31, "Invalid Timestamp", sub_msg="timestamp differs from server time by more than 10 minutes"
        )
    if "v" not in params:
        raise TopError(32, "Missing Version")
    if params["v"] != API_VERSION:
        if _VERSION_RE.match(params["v"]):
            raise TopError(34, "Unsupported Version")
        raise TopError(33, "Invalid Version")
    if params.get("format", "xml") not in ("json", "xml"):
        raise TopError(23, "Invalid Format")
    sign_method = params.get("sign_method", "md5")
    if sign_method not in SIGN_METHODS:
        raise TopError(
            25, "Invalid Signature", "isv.invalid-sign-method", f"unsupported sign_method: {sign_method}"
        )
    if not _signature_matches(params, creds.app_secret, sign_method):
        raise TopError(25, "Invalid Signature")
    if "session" not in params:
        raise TopError(26, "Missing Session")
    session = params["session"]
    if session == creds.session:
        return
    state = "unknown" if issued is None else issued(session, now)
    if state == "expired":
        raise TopError(27, "Invalid session:session-expired", "session-expired", outcome="session_expired")
    if state != "live":
        raise TopError(27, "Invalid Session", "invalid-sessionkey", INVALID_SESSION_MSG)


def _signature_matches(params: Mapping[str, str], secret: str, sign_method: str) -> bool:
    """The signature, computed with empty values dropped (the Java SDK never sends them) or, as the
    classic Python, Node and PHP clients do, signed as their key alone: which rule TOP applies to an
    empty value is unconfirmed, so either is accepted."""
    given = params["sign"].encode()
    if hmac.compare_digest(sign(params, secret, sign_method).encode(), given):
        return True
    if all(v.strip() for k, v in params.items() if k != "sign"):
        return False
    # Every param as sent, an empty value signing as its key alone.
    message = "".join(k + v for k, v in sorted(params.items()) if k and k != "sign")
    return hmac.compare_digest(_digest(message, secret, sign_method).encode(), given)


def _digest(message: str, secret: str, sign_method: str) -> str:
    key, data = secret.encode(), message.encode()
    if sign_method == "md5":
        return hashlib.md5(key + data + key).hexdigest().upper()
    digest = hashlib.md5 if sign_method == "hmac" else hashlib.sha256
    return hmac.new(key, data, digest).hexdigest().upper()


def parse_fields(params: Mapping[str, str], allowed: frozenset[str]) -> tuple[str, ...]:
    if "fields" not in params:
        raise missing("fields")
    names = tuple(dict.fromkeys(name.strip() for name in params["fields"].split(",") if name.strip()))
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise invalid("fields", "unknown field " + ",".join(unknown))
    if not names:
        raise missing("fields")
    return names


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.strip().isdigit()):
        raise invalid(name, "not a positive integer")
    value = int(text)
    if not low <= value <= high:
        raise invalid(name, f"must be between {low} and {high}")
    return value


def _time(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        return int(datetime.strptime(text, TIME_FORMAT).replace(tzinfo=GMT8).timestamp())
    except ValueError:
        raise invalid(name, "must be yyyy-MM-dd HH:mm:ss") from None


@dataclass(frozen=True)
class ListingQuery:
    fields: tuple[str, ...]
    page_no: int
    page_size: int
    order: str
    descending: bool
    start: int | None
    end: int | None
    q: str


def parse_listing(params: Mapping[str, str], page_cap: int) -> ListingQuery:
    fields = parse_fields(params, LISTING_FIELDS)
    page_no = _int(params, "page_no", 1, 1, 10**9)
    page_size = _int(params, "page_size", 40, 1, PAGE_SIZE_MAX)
    if page_no * page_size > page_cap:
        raise TopError(
            41,
            "Invalid Arguments",
            "isv.invalid-parameter",
            f"page_no*page_size must not exceed {page_cap} (page_no={page_no}, page_size={page_size}); "
            "请细化搜索条件，例如根据修改时间分段获取商品",
        )
    column, _, direction = params.get("order_by", "list_time:desc").partition(":")
    if column not in ORDER_COLUMNS or direction not in ("asc", "desc"):
        raise invalid("order_by", "use column:asc or column:desc with column in " + ",".join(ORDER_COLUMNS))
    return ListingQuery(
        fields=fields,
        page_no=page_no,
        page_size=page_size,
        order=column,
        descending=direction == "desc",
        start=_time(params, "start_modified"),
        end=_time(params, "end_modified"),
        q=params.get("q", ""),
    )


@dataclass(frozen=True)
class DetailQuery:
    fields: tuple[str, ...]
    num_iids: tuple[int, ...]


def parse_detail(params: Mapping[str, str]) -> DetailQuery:
    fields = parse_fields(params, DETAIL_FIELDS)
    if "num_iids" not in params:
        raise missing("num_iids")
    ids: dict[int, None] = {}
    for text in params["num_iids"].split(","):
        text = text.strip()
        if not (text.isascii() and text.isdigit()):
            raise invalid("num_iids", f"not a number: {text!r}")
        ids[int(text)] = None
    if len(ids) > NUM_IIDS_MAX:
        raise invalid("num_iids", f"at most {NUM_IIDS_MAX} ids, got {len(ids)}")
    return DetailQuery(fields=fields, num_iids=tuple(ids))

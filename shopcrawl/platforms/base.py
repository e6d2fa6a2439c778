"""The one seam every API dialect (TOP, 1688 AOP, item_search_shop gateways) plugs into.

A dialect answers the same questions for the spider and the middlewares, which are dialect-free:

- the listing plan (:class:`Lister`): which calls list the shop, and when the listing is complete;
- the detail calls for a set of listed items, and which records a detail answer holds;
- how a request is authorised when it is sent (URL, body or both), and undone when it comes back:
  a queued request never holds a credential;
- how a body decodes, exactly (a price that arrives as a JSON number never passes through a float);
- how an error is classified (:class:`ErrorClass`); error codes are strings;
- how a record maps onto the one item schema (:class:`~shopcrawl.items.ShopItem`).

Pure: no Scrapy imports but :class:`scrapy.Request` for building and authorising calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from scrapy import Request

    from shopcrawl.items import ShopItem

# The key of a listed item's fields holding its listing fingerprint (kept as ShopItem.listing_fp).
LISTING_FP = "listing_fp"
GAVE_UP_CODE = "-1"  # the code of the synthetic error a callback gets once retries are spent


class ErrorClass(Enum):
    """What the crawl does about an error."""

    BAN = "ban"  # a ban with a length: wait it out, send nothing to that API (or app key) meanwhile
    RETRY = "retry"  # transient: bounded retries with backoff
    RECORD = "record"  # about one item: record it as a reject, do not retry
    FATAL = "fatal"  # credentials, permissions, quota: stop the crawl with a hint
    # The seller's session or access token was refused: refresh it once if it has expired and can be
    # refreshed, and send again; else stop with the login hint.
    AUTH = "auth"


class EnvelopeError(ValueError):
    """The body is not the dialect's envelope (truncated, garbled, or of another shape)."""


_BAN_RE = re.compile(r"ban will last for (\d+) more seconds")


@dataclass(frozen=True)
class ApiError:
    """An error answer, in any dialect. ``code`` is a string: TOP's ``"7"``, AOP's
    ``"gw.QpsOverLimit"``, a gateway's ``"4005"``."""

    code: str
    msg: str
    sub_code: str = ""
    sub_msg: str = ""
    request_id: str = ""
    source: str = "TOP"  # names the API in messages

    @property
    def ban_seconds(self) -> int | None:
        match = _BAN_RE.search(self.sub_msg)
        return int(match.group(1)) if match else None

    @property
    def app_wide(self) -> bool:
        """A ban on the whole app key rather than on one API."""
        return self.sub_code == "accesscontrol.limited-by-app-access-count"

    def describe(self) -> str:
        text = f"{self.source} error {self.code} ({self.msg})"
        if self.sub_code:
            text += f" {self.sub_code}"
        if self.sub_msg:
            text += f": {self.sub_msg}"
        return text


@dataclass(frozen=True)
class Credentials:
    """What a dialect signs or authorises with. ``session`` is TOP's session key or 1688's
    ``access_token``; a gateway's key and secret are ``app_key`` and ``secret``."""

    app_key: str
    secret: str = field(repr=False)
    session: str = field(repr=False)
    sign_method: str

    def __repr__(self) -> str:  # never show the secret or the session
        return f"Credentials(app_key={self.app_key!r}, sign_method={self.sign_method!r})"


@dataclass(frozen=True)
class Call:
    """One unsigned API call: the API it calls, its business params, and the callback's state
    (JSON-able: it rides in the distributed queue)."""

    api: str
    params: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ListingPage:
    """What one listing answer holds and asks for next."""

    rows: list[Any]  # the listed records as sent (the spider checks each row's id)
    page_key: str  # names this page for the ledger: the same page processed again claims the same items
    declared_total: int | None = None  # the shop's total, from the listing's first page only
    follow: list[Call] = field(default_factory=list)  # the listing calls this page plans
    queries: int = 0  # listing queries (windows, sort orders, price bands) this page started
    # Why the plan cannot reach every declared item, once it knows (e.g. a gateway's depth cap and
    # sort orders); the run record's reason names it when the run ends incomplete.
    gap: str = ""


class Lister(Protocol):
    """The listing plan of one shop. Follow-up calls are derived from the page that plans them, so a
    page processed on any worker, or twice, plans the same calls."""

    def first(self) -> Call:
        """The listing's first call: at the start, and again for a run whose shared state was lost."""

    def on_page(self, call: Call, payload: Mapping[str, Any], listed_count: int) -> ListingPage:
        """Decode one listing answer (raises :class:`EnvelopeError`) and plan what follows.
        ``listed_count`` is how many distinct items the run has listed so far."""


class Dialect(Protocol):
    name: str  # "top", "1688", "gateway"
    platform: str  # the store's platform: "taobao" or "1688"
    source: str  # names the API in messages: "TOP", "1688", "gateway"
    production_url: str
    page_size_max: int
    page_cap_default: int  # the API's cap on how deep one listing query pages
    detail_batch_max: int
    needs_session: bool  # whether SHOPCRAWL_SESSION is required

    def lister(self, seller_id: str, *, page_size: int, page_cap: int) -> Lister: ...

    def detail_call(self, ids: Sequence[str], listed: Mapping[str, Mapping[str, Any]]) -> Call:
        """The call fetching these listed items (at most ``detail_batch_max``)."""

    def detail_records(self, payload: Mapping[str, Any]) -> list[Any]:
        """The item records of a detail answer (raises :class:`EnvelopeError`)."""

    def record_id(self, record: Any) -> str | None:
        """A detail record's item id as the listing wrote it, or None."""

    def listed_id(self, row: Any) -> int | str:
        """A listing row's item id, or what is wrong with the row."""

    def listed_fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The listing fields worth keeping with the item (they fill what the detail lacks)."""

    def listing_fingerprint(self, row: Mapping[str, Any]) -> str:
        """The listed fields that show an item changed, as one string: an incremental crawl fetches
        the detail of an item whose fingerprint differs from the stored one."""

    def request(
        self, base_url: str, call: Call, *, callback: Any, meta: dict[str, Any], priority: int
    ) -> Request:
        """The unsigned request for a call: no credential, no timestamp, a stable fingerprint."""

    def authorise(self, request: Request, creds: Credentials, now: datetime) -> tuple[str, bytes]:
        """The URL and body to send: the request's with credentials, timestamp and signature."""

    def decode(self, api: str, status: int, body: bytes) -> tuple[dict[str, Any] | None, ApiError | None]:
        """(payload, None) or (None, error) for an answer; raises :class:`EnvelopeError` (or a
        ``ValueError``) for a body that is neither. An HTTP status the dialect does not use for
        errors raises :class:`HttpStatus`."""

    def classify(self, error: ApiError, *, max_ban_wait: float) -> ErrorClass: ...

    def fatal_hint(self, error: ApiError, *, max_ban_wait: float) -> str: ...

    def to_item(
        self, raw: Mapping[str, Any], listed: Mapping[str, Any], *, seller_id: str, run_id: str
    ) -> ShopItem:
        """The typed item; raises :class:`~shopcrawl.platforms.base.InvalidItem` naming the field."""


class HttpStatus(Exception):
    """An HTTP status the dialect has no error body for: the middleware's HTTP rules apply."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class InvalidItem(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def positive_id(raw: Any, name: str) -> int | str:
    """A record's integer id field (a number or a numeric string), or what is wrong with it."""
    if not isinstance(raw, dict):
        return f"not an object: {raw!r:.80}"
    value = raw.get(name)
    if value is None or value == "":
        return f"{name} missing"
    if isinstance(value, bool | float):
        return f"{name} is not an integer: {value!r:.40}"
    try:
        number = int(str(value).strip())
    except ValueError:
        return f"{name} is not an integer: {value!r:.40}"
    return number if number > 0 else f"{name} is not positive: {number}"


def fingerprint(row: Mapping[str, Any], names: Sequence[str]) -> str:
    """The named fields of a listing row as compact JSON, absent ones as null. Exact: a price that
    arrived as a Decimal is its string, never a float."""
    values = [row.get(name) for name in names]
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"), default=str)


def batches(ids: Sequence[str], size: int) -> list[Sequence[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]

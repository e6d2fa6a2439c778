"""Flow control (QPS bans, quota bans) and fault injection for sandbox API calls.

Both act only on calls that passed the credential checks. Choices [unconfirmed] in the protocol doc:

- QPS: a sliding 1.0 s window per (app_key, API method). A call that finds ``qps`` accepted calls in
  the window starts a ban of ``--ban-seconds`` for that key; it and every call during the ban get
  code 7 ``accesscontrol.limited-by-api-access-count`` with
  ``This ban will last for N more seconds``, N = ceil(remaining seconds). Refused calls are not
  counted as accepted. The real per-API limits are unknown (§1.6).
- Quota ban (``--quota-ban-seconds``): code 7 ``accesscontrol.limited-by-app-access-count``, the
  sub-code the FAQ gives for the app's total quota, with N = that many seconds on every call.
- Faults: one uniform draw per accepted call from ``random.Random("faults:<seed>")`` picks at most one
  fault, in the order 5xx, timeout, truncated, garbled, isp (cumulative rates). 5xx alternates
  randomly between 502 and 503 with a Tengine-style HTML body; isp faults cycle through the
  retryable ``isp.*`` sub-codes listed in §1.5, all as code 15 "Remote service error".
"""

from __future__ import annotations

import math
import random
from collections import deque
from itertools import cycle

from .checks import TopError

BAN_SUB_MSG = "This ban will last for {} more seconds"
FAULT_KINDS = ("5xx", "timeout", "truncated", "garbled", "isp")
_ISP_ERRORS = (
    ("isp.top-remote-connection-timeout", "调用后端服务超时"),
    ("isp.top-remote-service-unavailable", "后端服务不可用"),
    ("isp.top-remote-unknown-error", "后端服务未知错误"),
    ("isp.remote-connection-error", "远程连接错误"),
)


def ban_error(seconds_left: float, ban_until: float, *, app_wide: bool = False) -> TopError:
    sub_code = (
        "accesscontrol.limited-by-app-access-count"
        if app_wide
        else "accesscontrol.limited-by-api-access-count"
    )
    return TopError(
        7,
        "App Call Limited",
        sub_code,
        BAN_SUB_MSG.format(max(1, math.ceil(seconds_left))),
        outcome="ban",
        ban_until=ban_until,
    )


class RateLimiter:
    """Sliding-window QPS per key, with a ban when the limit is reached."""

    def __init__(self, qps: int, ban_seconds: float) -> None:
        self.qps = qps
        self.ban_seconds = ban_seconds
        self._accepted: dict[tuple[str, str], deque[float]] = {}
        self._banned_until: dict[tuple[str, str], float] = {}

    def admit(self, key: tuple[str, str], now: float) -> tuple[float, bool] | None:
        """None if the call is accepted, else (ban end, whether this call started the ban)."""
        if self.qps <= 0:
            return None
        until = self._banned_until.get(key, 0.0)
        if now < until:
            return until, False
        window = self._accepted.setdefault(key, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.qps:
            until = self._banned_until[key] = now + self.ban_seconds
            window.clear()
            return until, True
        window.append(now)
        return None


class FaultPlan:
    def __init__(
        self,
        seed: int,
        *,
        rate_5xx: float = 0.0,
        rate_timeout: float = 0.0,
        rate_truncated: float = 0.0,
        rate_garbled: float = 0.0,
        rate_isp: float = 0.0,
    ) -> None:
        self._rng = random.Random(f"faults:{seed}")
        rates = (rate_5xx, rate_timeout, rate_truncated, rate_garbled, rate_isp)
        self._bounds: list[tuple[float, str]] = []
        total = 0.0
        for kind, rate in zip(FAULT_KINDS, rates, strict=True):
            if rate > 0:
                total += rate
                self._bounds.append((total, kind))
        self._isp = cycle(_ISP_ERRORS)

    def draw(self) -> str | None:
        """The fault for this call, or None."""
        if not self._bounds:
            return None
        x = self._rng.random()
        for bound, kind in self._bounds:
            if x < bound:
                return kind
        return None

    def status_5xx(self) -> int:
        return self._rng.choice((502, 503))

    def garbage(self) -> bytes:
        """Bytes that are not JSON (nor UTF-8): a stray proxy page with binary noise."""
        noise = bytes(self._rng.randrange(128, 256) for _ in range(48))
        return b"\xff\xfe<html><body>upstream reset</body></html>" + noise

    def isp_error(self) -> TopError:
        sub_code, sub_msg = next(self._isp)
        return TopError(15, "Remote service error", sub_code, sub_msg, outcome="isp")


def html_error(status: int) -> bytes:
    reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}[status]
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>Tengine</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode("ascii")

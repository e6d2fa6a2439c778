"""POSTing an alert body to a webhook: DingTalk's signed URL, the robots' JSON answers, redacted logging.

Blocking (urllib): call it from a worker thread, never on the reactor. A webhook URL often carries a token
(``access_token=``, ``key=``, a path segment), so only :func:`redact_url` ever reaches a log or the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from shopcrawl.plainhttp import OPENER

TIMEOUT_SECONDS = 5.0
_MAX_ANSWER = 64 * 1024


class WebhookError(Exception):
    """The webhook did not take the alert; the message holds no URL or secret."""


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")), not yet URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """``url`` with DingTalk's ``timestamp`` and URL-encoded ``sign`` appended."""
    query = urllib.parse.urlencode({"timestamp": timestamp_ms, "sign": dingtalk_sign(secret, timestamp_ms)})
    return f"{url}{'&' if '?' in url else '?'}{query}"


def redact_url(url: str) -> str:
    """``https://oapi.dingtalk.com/robot/send?access_token=x`` -> ``https://oapi.dingtalk.com/***``:
    scheme, host and port only (path, query and user info can all hold tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/***" if parts.path.strip("/") or parts.query or parts.username else "/"
    return f"{parts.scheme}://{host}{port}{hidden}"


def post_json(url: str, body: dict[str, Any], *, robot: bool, timeout: float = TIMEOUT_SECONDS) -> None:
    """POST ``body`` as JSON to ``url``. Raises WebhookError unless the answer is 2xx and, for a robot
    (DingTalk, WeCom), its JSON ``errcode`` is 0."""
    data = json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with OPENER.open(request, timeout=timeout) as response:
            status, answer = response.status, response.read(_MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the answer's socket
        raise WebhookError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WebhookError(f"{type(exc).__name__}: {reason}"[:200]) from None
    if not 200 <= status < 300:
        raise WebhookError(f"HTTP {status}")
    if robot:
        try:
            reply = json.loads(answer)
        except ValueError:
            raise WebhookError(f"HTTP {status} but the answer is not JSON") from None
        errcode = reply.get("errcode") if isinstance(reply, dict) else None
        if errcode != 0:
            errmsg = str(reply.get("errmsg", "")) if isinstance(reply, dict) else ""
            raise WebhookError(f"errcode {errcode!r}: {errmsg[:100]}")

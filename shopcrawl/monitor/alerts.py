"""Alerts: which changes of a complete run match the rules, the bodies that carry them, and the pass that
queues them in the store's outbox and sends what is pending.

Pure apart from :func:`alert_pass` (store reads and writes, HTTP: call it off the reactor). Bodies are
JSON objects; the robots' markdown escapes every shop string, so a title cannot add a link or markup.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from shopcrawl.config import AlertConfig
from shopcrawl.monitor.changes import Change, ReportError, ReportSource, compare
from shopcrawl.monitor.webhooks import WebhookError, post_json, redact_url, signed_url
from shopcrawl.stores.base import RunRecord
from shopcrawl.stores.outbox import AlertRecord

logger = logging.getLogger(__name__)

BATCH = 20  # changes per message at most
# Bytes of markdown per message at most: WeCom takes 4096, DingTalk 20000; both with room to spare.
MARKDOWN_BYTES = {"dingtalk": 18_000, "wecom": 4_000}
TRIES = 3  # sends of one message per pass
BACKOFF_SECONDS = (1.0, 3.0)  # waits between them: a pass spends at most ~10 s on a failing webhook
TITLE_CHARS = 60
_LABELS = {
    "price_drop": "Price drop",
    "price_rise": "Price rise",
    "new": "New item",
    "delisted": "Delisted",
    "relisted": "Relisted",
    "sold_out": "Sold out",
    "restocked": "Restocked",
}


def matches(change: Change, config: AlertConfig) -> bool:
    """Whether ``change`` is one the rules alert on."""
    if change.kind in ("price_drop", "price_rise"):
        threshold = config.price_drop if change.kind == "price_drop" else config.price_rise
        if threshold is None:
            return False
        if change.pct is None:  # from a zero price: any rise is past every threshold
            return change.kind == "price_rise"
        return abs(Decimal(str(change.pct))) >= threshold
    return change.kind in config.events


def content_key(change: Change, base_run_id: str) -> str:
    """The change without the run that found it: a re-run crawl finding it again has the same one."""
    parts = (base_run_id, change.platform, change.seller_id, change.kind, change.num_iid)
    more = (change.sku_id or "", change.start_quantity or "", change.old, change.new)
    return "|".join(map(str, (*parts, *more)))


def records_for(changes: Sequence[Change], base_run_id: str, now: datetime) -> list[AlertRecord]:
    return [
        AlertRecord(
            key=c.key,
            content_key=content_key(c, base_run_id),
            platform=c.platform,
            seller_id=c.seller_id,
            run_id=c.run_id,
            change=c.as_dict(),
            created_at=now,
        )
        for c in changes
    ]


# --- bodies ---------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def escape_markdown(text: str) -> str:
    """Shop text as inert markdown: one line, HTML-escaped, every markdown punctuation backslashed."""
    one_line = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def _line(change: dict[str, Any]) -> str:
    title = str(change.get("title", ""))
    title = title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"
    what = [f"{change['num_iid']}"]
    if change.get("sku_id"):
        what.append(f"SKU {change['sku_id']}")
    if change.get("start_quantity"):
        what.append(f"from {change['start_quantity']} pcs")
    detail = ""
    if "old" in change and "new" in change:
        detail = f": {change['old']} → {change['new']}"
        if change.get("pct") is not None:
            detail += f" ({change['pct']:+.2f}%)"
    label = _LABELS.get(str(change["kind"]), str(change["kind"]))
    head = escape_markdown(f"{label} · {' '.join(what)}{detail}")
    return f"- {head} · {escape_markdown(title)}"


def _markdown(run_id: str, seller_id: str, lines: Sequence[str]) -> tuple[str, str]:
    title = f"shopcrawl: {len(lines)} changes in shop {seller_id}"
    head = f"#### {escape_markdown(title)}\n\n{escape_markdown('run ' + run_id)}\n\n"
    return title, head + "\n".join(lines)


def messages(
    fmt: str, platform: str, seller_id: str, run_id: str, changes: Sequence[dict[str, Any]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(number of changes carried, body) per message: at most BATCH changes, and for the robots at most
    MARKDOWN_BYTES of markdown."""
    if fmt == "generic":
        for start in range(0, len(changes), BATCH):
            batch = list(changes[start : start + BATCH])
            body = {"seller": seller_id, "platform": platform, "run_id": run_id, "changes": batch}
            yield len(batch), body
        return
    limit = MARKDOWN_BYTES[fmt]
    lines: list[str] = []
    for change in changes:
        line = _line(change)
        if lines and (
            len(lines) == BATCH or len(_markdown(run_id, seller_id, [*lines, line])[1].encode()) > limit
        ):
            yield len(lines), _robot_body(fmt, *_markdown(run_id, seller_id, lines))
            lines = []
        lines.append(line)
    if lines:
        yield len(lines), _robot_body(fmt, *_markdown(run_id, seller_id, lines))


def credential_message(fmt: str, details: dict[str, Any], text: str) -> dict[str, Any]:
    """The body warning that a seller's authorisation stops working soon (no token in it)."""
    if fmt == "generic":
        return {"event": "credential_expiring", "text": text, **details}
    title = f"shopcrawl: authorisation of {details.get('seller', '?')} expires soon"
    return _robot_body(fmt, title, f"#### {escape_markdown(title)}\n\n{escape_markdown(text)}")


def send_one(config: AlertConfig, body: dict[str, Any]) -> None:
    """POST one body to the webhook (signed for DingTalk when a secret is set); raises WebhookError."""
    _sender(config, lambda: datetime.now(UTC))(config.webhook, body)


def _robot_body(fmt: str, title: str, text: str) -> dict[str, Any]:
    if fmt == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    return {"msgtype": "markdown", "markdown": {"content": text}}


# --- the pass -------------------------------------------------------------------------------------------


class AlertOutbox(ReportSource, Protocol):
    """The store reads and outbox writes the alert pass needs (SQLite and MongoDB stores)."""

    def queue_alerts(self, records: Sequence[AlertRecord]) -> list[AlertRecord]: ...

    def pending_alerts(self, platform: str, seller_id: str) -> list[AlertRecord]: ...

    def mark_alerts(self, keys: Sequence[str], at: datetime, error: str | None = None) -> None: ...


Sender = Callable[[str, dict[str, Any]], None]


@dataclass
class PassResult:
    queued: int = 0
    delivered: int = 0
    pending: int = 0


def alert_pass(
    store: AlertOutbox,
    config: AlertConfig,
    run: RunRecord,
    *,
    send: Sender | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PassResult:
    """Queue the matching changes ``run`` found (only if it is the shop's latest complete run), then send
    every pending alert of the shop, oldest first. Blocking: run it in a worker thread."""
    result = PassResult()
    if run.status != "complete":
        return result
    try:
        comparison = compare(store, run.platform, run.seller_id)
    except ReportError as exc:
        logger.info("Alerts: no changes to check for run %s: %s", run.run_id, exc)
    else:
        if comparison.current.run_id == run.run_id:
            wanted = [c for c in comparison.changes if matches(c, config)]
            queued = store.queue_alerts(records_for(wanted, comparison.base.run_id, clock()))
            result.queued = len(queued)
            logger.info(
                "Alerts: run %s found %d changes, %d match the rules, %d new to the outbox",
                run.run_id,
                len(comparison.changes),
                len(wanted),
                len(queued),
            )
        else:
            logger.info("Alerts: run %s is not the shop's latest complete run; nothing new", run.run_id)
    pending = store.pending_alerts(run.platform, run.seller_id)
    send = send or _sender(config, clock)
    for run_id, group in _by_run(pending):
        changes = [record.change for record in group]
        sent = 0
        for count, body in messages(config.format, run.platform, run.seller_id, run_id, changes):
            keys = [record.key for record in group[sent : sent + count]]
            if not _deliver(store, send, body, keys, sleep, clock, config.webhook):
                result.pending = len(pending) - result.delivered
                return result
            sent += count
            result.delivered += count
    return result


def _by_run(records: Sequence[AlertRecord]) -> list[tuple[str, list[AlertRecord]]]:
    groups: dict[str, list[AlertRecord]] = {}
    for record in records:
        groups.setdefault(record.run_id, []).append(record)
    return list(groups.items())


def _deliver(
    store: AlertOutbox,
    send: Sender,
    body: dict[str, Any],
    keys: list[str],
    sleep: Callable[[float], None],
    clock: Callable[[], datetime],
    webhook: str,
) -> bool:
    for attempt in range(1, TRIES + 1):
        try:
            send(webhook, body)
        except WebhookError as exc:
            store.mark_alerts(keys, clock(), error=str(exc))
            logger.warning(
                "Alerts: webhook %s refused %d alerts (try %d/%d): %s",
                redact_url(webhook),
                len(keys),
                attempt,
                TRIES,
                exc,
            )
            if attempt < TRIES:
                sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1])
            continue
        store.mark_alerts(keys, clock())
        logger.info("Alerts: %d delivered to %s", len(keys), redact_url(webhook))
        return True
    logger.warning("Alerts: %d left pending; the next run retries them", len(keys))
    return False


def _sender(config: AlertConfig, clock: Callable[[], datetime]) -> Sender:
    robot = config.format != "generic"

    def send(url: str, body: dict[str, Any]) -> None:
        if config.secret:
            url = signed_url(url, config.secret, int(clock().timestamp() * 1000))
        post_json(url, body, robot=robot)

    return send

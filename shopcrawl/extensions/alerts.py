"""Alerts after a complete run: on ``run_finished``, queue the run's changes that match the rules and send
every pending alert of the shop (:func:`shopcrawl.monitor.alerts.alert_pass`), in a worker thread. At
the start of a crawl, a warning when the seller's authorisation cannot be refreshed and expires within
7 days (at most once a day).

Off (``NotConfigured``) without ``SHOPCRAWL_ALERT_WEBHOOK``. An incomplete, interrupted or failed run
sends nothing. A failing webhook or store never fails the crawl: what was not delivered stays pending in
the store's outbox for the next run.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_to_future
from twisted.internet import threads

from shopcrawl import signals as shopcrawl_signals
from shopcrawl.config import AlertConfig, ShopcrawlConfig
from shopcrawl.monitor.alerts import AlertOutbox, PassResult, alert_pass, credential_message, send_one
from shopcrawl.monitor.webhooks import redact_url
from shopcrawl.stores import open_store
from shopcrawl.stores.base import RunRecord

logger = logging.getLogger(__name__)

QUEUED_STAT = "shopcrawl/alerts/queued"
DELIVERED_STAT = "shopcrawl/alerts/delivered"
PENDING_STAT = "shopcrawl/alerts/pending"
ERROR_STAT = "shopcrawl/alerts/error"
CREDENTIAL_ALERT_EVERY = 20 * 3600  # s between two authorisation warnings through the webhook


class Alerts:
    def __init__(self, crawler: Crawler, config: AlertConfig) -> None:
        self.crawler = crawler
        self.config = config

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        config = AlertConfig.from_settings(crawler.settings)
        if not config.webhook:
            raise NotConfigured  # no message: Scrapy would log it as a warning on every crawl
        ext = cls(crawler, config)
        crawler.signals.connect(ext.run_finished, signal=shopcrawl_signals.run_finished)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        logger.info("Alerts on: %s body to %s", config.format, redact_url(config.webhook))
        return ext

    async def spider_opened(self) -> None:
        """Warn through the webhook, at most once a day, when the seller's stored authorisation stops
        working within 7 days and cannot be refreshed (a monitor must not learn of it by failing)."""
        auth = getattr(self.crawler, "_shopcrawl_auth", None)
        if auth is None or auth.grant is None or not auth.warning():
            return
        if time.time() - auth.grant.warned_at < CREDENTIAL_ALERT_EVERY:
            return
        try:
            await deferred_to_future(threads.deferToThread(self._warn_credential, auth))
        except Exception as exc:  # never fails the crawl
            logger.error("Alerts: the authorisation warning was not delivered: %s", exc)

    def _warn_credential(self, auth: Any) -> None:
        keeper = auth.keeper
        with keeper.file.locked():  # one worker of a run sends it; the others see warned_at
            grant = next((g for g in keeper.file.load() if g.key == keeper.grant.key), keeper.grant)
            if time.time() - grant.warned_at < CREDENTIAL_ALERT_EVERY:
                return
            public = grant.public()
            details = {k: public[k] for k in ("api", "app_key", "seller", "expires_at", "login_needed_by")}
            send_one(self.config, credential_message(self.config.format, details, public["warning"]))
            keeper.file.update(grant, warned_at=time.time())
        logger.info("Alerts: sent the authorisation expiry warning for seller %s", grant.seller)

    async def run_finished(self, run: RunRecord) -> None:
        if run.status != "complete":
            logger.info("Alerts: run %s is %s; no alerts", run.run_id, run.status)
            return
        try:
            result = await deferred_to_future(threads.deferToThread(self._pass, run))
        except Exception as exc:  # a failed alert pass never fails the crawl
            assert self.crawler.stats is not None
            self.crawler.stats.set_value(ERROR_STAT, type(exc).__name__)
            logger.error("Alerts: the alert pass failed (the crawl is not affected): %s", exc)
            return
        self._done(result)

    def _pass(self, run: RunRecord) -> PassResult | None:
        store: Any = open_store(ShopcrawlConfig.from_settings(self.crawler.settings).store_uri)
        if not hasattr(store, "queue_alerts"):
            logger.warning("Alerts: the store keeps no outbox (%s); no alerts", type(store).__name__)
            return None
        outbox: AlertOutbox = store
        store.open()
        try:
            return alert_pass(outbox, self.config, run)
        finally:
            store.close()

    def _done(self, result: PassResult | None) -> None:
        if result is None:
            return
        stats = self.crawler.stats
        assert stats is not None
        stats.set_value(QUEUED_STAT, result.queued)
        stats.set_value(DELIVERED_STAT, result.delivered)
        stats.set_value(PENDING_STAT, result.pending)

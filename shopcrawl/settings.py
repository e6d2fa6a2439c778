"""Scrapy settings for shopcrawl: component wiring, and the only place that reads os.environ.

Every ``SHOPCRAWL_*`` setting may come from an env var of the same name; ``-s NAME=VALUE`` on
the command line wins over both. Defaults, types and checks live in :mod:`shopcrawl.config`.
"""

import os

from shopcrawl.config import DEFAULTS

BOT_NAME = "shopcrawl"
SPIDER_MODULES = ["shopcrawl.spiders"]
NEWSPIDER_MODULE = "shopcrawl.spiders"
COMMANDS_MODULE = "shopcrawl.commands"

for _name in DEFAULTS:
    if os.environ.get(_name):
        globals()[_name] = os.environ[_name]

# An API client, not a browser: no robots.txt, cookies or referers (which could carry URLs).
ROBOTSTXT_OBEY = False
COOKIES_ENABLED = False
REFERER_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # no listening ports on a crawl worker
USER_AGENT = "shopcrawl/0.1 (+TOP API client)"

CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 16
DOWNLOAD_DELAY = 0
DOWNLOAD_TIMEOUT = 30
# Responses whose callbacks are still running (items waiting for a store write, listing pages waiting for
# their store read) hold their decoded bodies, about ten times the bytes Scrapy counts. Scrapy's 5 MB of
# bodies was 50+ MiB of waiting objects behind a slow SQLite write; 1 MB is about twice what a full
# downloader's worth of answers holds.
SCRAPER_SLOT_MAX_ACTIVE_SIZE = 1_000_000
# Retries are ours (api_errors), built on get_retry_request, with backoff; RETRY_TIMES bounds them.
RETRY_ENABLED = True
RETRY_TIMES = 5

DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    # The API answers; it never redirects. A redirect is an error, not something to follow.
    "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "shopcrawl.downloadermiddlewares.api_errors.ApiErrorsMiddleware": 850,
    "shopcrawl.downloadermiddlewares.ratelimit.RateLimitMiddleware": 900,
    "shopcrawl.downloadermiddlewares.signing.SigningMiddleware": 950,
}
# Distributed mode: REDIS_URL set (env var or -s) means every worker with the same URL shares the run.
if os.environ.get("REDIS_URL"):
    REDIS_URL = os.environ["REDIS_URL"]
SCHEDULER = "shopcrawl.scheduler.ShopScheduler"
DUPEFILTER_CLASS = "shopcrawl.scheduler.ListingDupeFilter"  # one process; Redis workers filter in Redis
# Outermost (lowest number): it sees a callback's outputs after every other spider middleware, so a
# request it waits for is one that goes on to the scheduler.
SPIDER_MIDDLEWARES = {"shopcrawl.distributed.spidermw.LeaseAckMiddleware": 5}
ITEM_PIPELINES = {
    "shopcrawl.pipelines.validate.ValidatePipeline": 100,
    "shopcrawl.pipelines.store.StorePipeline": 800,
}
EXTENSIONS = {
    "shopcrawl.extensions.run.RunLifecycle": 500,
    "shopcrawl.extensions.progress.Progress": 510,
    "shopcrawl.distributed.extension.DistributedRun": 520,
    "shopcrawl.extensions.alerts.Alerts": 530,
}
FEED_EXPORTERS = {"csv": "shopcrawl.exporters.CsvItemExporter"}
FEED_EXPORT_ENCODING = "utf-8"

LOG_LEVEL = os.environ.get("SHOPCRAWL_LOG_LEVEL", "INFO")
LOG_FORMATTER = "shopcrawl.logformatter.ShopLogFormatter"  # no per-item "Scraped from" line above DEBUG

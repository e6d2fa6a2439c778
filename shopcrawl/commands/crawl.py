"""``scrapy crawl``, with checks before any request and an exit status that tells the outcome.

The run's summary line is the last line on stdout. Exit status: 0 complete; 1 stopped by a
fatal error (the line names what to fix); 2 bad configuration (nothing was sent); 3 finished but
incomplete (not every declared item accounted for); 4 interrupted by SIGINT or SIGTERM before
every declared item was accounted for (a distributed worker that left its run to the others).
"""

from __future__ import annotations

import argparse
import sys

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.exceptions import UsageError

from shopcrawl.auth.crawl import prepare, uses_stored_grant
from shopcrawl.auth.grants import CredentialsError
from shopcrawl.auth.keeper import LoginNeeded
from shopcrawl.config import (
    ConfigError,
    ShopcrawlConfig,
    crawl_mode,
    credentials_from_settings,
    token_min_ttl,
)
from shopcrawl.runs import FATAL_STAT, SHUTDOWN_REASON, STATUS_STAT, SUMMARY_STAT
from shopcrawl.stores import open_store, redact_uri

EXIT_FATAL, EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 3, 4


def check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError(f"cannot reach Redis at REDIS_URL={redact_uri(url)}: {exc}") from None


class Command(ScrapyCrawl):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError
        assert self.settings is not None and self.crawler_process is not None
        if args[0] == "shop":
            try:
                config = ShopcrawlConfig.from_settings(
                    self.settings, api=opts.spargs.get("api"), platform=opts.spargs.get("platform")
                )
                stored = uses_stored_grant(self.settings, config)
                credentials_from_settings(
                    self.settings, needs_session=config.dialect.needs_session and not stored
                )
                crawl_mode(opts.spargs.get("mode"))
                seller_id = str(opts.spargs.get("seller_id", "")).strip()
                if not seller_id:
                    raise ConfigError("seller_id is required: scrapy crawl shop -a seller_id=<seller>")
                token_min_ttl(self.settings)
                store = open_store(config.store_uri)
                store.open()
                store.close()
                if self.settings.get("REDIS_URL"):
                    check_redis(str(self.settings.get("REDIS_URL")))
                # The stored grant, refreshed now if it expires within SHOPCRAWL_TOKEN_MIN_TTL.
                prepare(self.settings, config, seller_id)
            except (ConfigError, CredentialsError, ValueError, RuntimeError) as exc:
                print(f"shopcrawl: {exc}", file=sys.stderr)
                self.exitcode = EXIT_CONFIG
                return
            except LoginNeeded as exc:
                print(f"shopcrawl stopped: {exc}", file=sys.stderr)
                self.exitcode = EXIT_FATAL
                return
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = EXIT_FATAL
            return
        stats = crawler.stats.get_stats() if crawler.stats else {}
        if stats.get(SUMMARY_STAT):
            print(stats[SUMMARY_STAT], flush=True)
        fatal = stats.get(FATAL_STAT)
        if fatal:
            print(f"shopcrawl stopped: {fatal}", file=sys.stderr)
            self.exitcode = EXIT_FATAL
        elif stats.get(STATUS_STAT) == "complete":
            return
        elif stats.get(STATUS_STAT) == "interrupted" or stats.get("finish_reason") == SHUTDOWN_REASON:
            self.exitcode = EXIT_INTERRUPTED
        elif stats.get(STATUS_STAT) == "incomplete":
            self.exitcode = EXIT_INCOMPLETE

"""The crawl's side of authorisation: which credentials sign the calls, and the one refresh after
the API refuses an expired one.

``SHOPCRAWL_SESSION`` wins when set (nothing is refreshed then). Otherwise the grant for (api, app
key, seller) comes from the credentials file; ``scrapy crawl`` refreshes it first if it expires
within ``SHOPCRAWL_TOKEN_MIN_TTL`` (:func:`prepare`). Mid-crawl, an expired-credential error
(TOP code 27 ``session-expired``; 1688 ``401`` once the stored expiry has passed, since there a wrong
token and an expired one look alike) pauses the dialect's calls, refreshes once in a thread, and
the calls that failed are sent again with the new token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.utils.defer import deferred_to_future
from twisted.internet import defer, threads

from shopcrawl.auth.grants import CredentialsError, CredentialsFile, Grant, credentials_path, expiry_warning
from shopcrawl.auth.keeper import Keeper, LoginNeeded, login_hint
from shopcrawl.auth.oauth import oauth_client
from shopcrawl.config import (
    ConfigError,
    SettingsLike,
    ShopcrawlConfig,
    crawl_config,
    credentials_from_settings,
    token_min_ttl,
)
from shopcrawl.platforms.base import ApiError, Credentials

logger = logging.getLogger(__name__)

REFRESHED_STAT = "shopcrawl/auth/refreshed"
RENEWED_STAT = "shopcrawl/auth/renewed"
EXPIRY_SKEW_SECONDS = 120  # a token the API refuses this close to its stored expiry counts as expired
MIN_REFRESH_GAP_SECONDS = 60  # a token refreshed this recently and refused again is not refreshed again


def keeper_for(settings: SettingsLike, config: ShopcrawlConfig, seller_id: str) -> Keeper:
    """The keeper of the stored grant for this crawl; CredentialsError when there is none."""
    creds = credentials_from_settings(settings, needs_session=False)
    file = CredentialsFile(credentials_path(settings.get("SHOPCRAWL_CREDENTIALS")))
    grant = file.find(config.api, creds.app_key, seller_id)
    client = oauth_client(
        config.api,
        creds.app_key,
        creds.secret,
        oauth_url=str(settings.get("SHOPCRAWL_OAUTH_URL") or "") or None,
        api_url=config.api_url,
    )
    return Keeper(file, client, grant, redis_url=str(settings.get("REDIS_URL") or "") or None)


def uses_stored_grant(settings: SettingsLike, config: ShopcrawlConfig) -> bool:
    return config.dialect.needs_session and not str(settings.get("SHOPCRAWL_SESSION") or "").strip()


def prepare(settings: SettingsLike, config: ShopcrawlConfig, seller_id: str) -> Grant | None:
    """Before a crawl: the stored grant, refreshed if it expires within SHOPCRAWL_TOKEN_MIN_TTL.
    None when SHOPCRAWL_SESSION is set or the API needs no session. Raises CredentialsError
    (nothing usable stored) or LoginNeeded (expired, refresh refused or impossible)."""
    if not uses_stored_grant(settings, config):
        return None
    return keeper_for(settings, config, seller_id).ensure_fresh(token_min_ttl(settings))


class CrawlAuth:
    """The credentials the signing middleware signs with, one per crawler."""

    def __init__(
        self, crawler: Crawler, credentials: Credentials, keeper: Keeper | None, api: str = "top"
    ) -> None:
        self.crawler = crawler
        self.api = api  # names the login command in the stop line
        self.credentials = credentials
        self.keeper = keeper
        self.generation = 0
        self.signed: WeakKeyDictionary[Request, int] = WeakKeyDictionary()  # request -> generation
        self._refreshing: defer.Deferred[Any] | None = None
        self._refreshed_at = 0.0
        self._waiters: list[defer.Deferred[None]] = []
        self._failure: str | None = None  # once a refresh failed: the line every refused call stops with

    @classmethod
    def for_crawler(cls, crawler: Crawler) -> CrawlAuth:
        auth: CrawlAuth | None = getattr(crawler, "_shopcrawl_auth", None)
        if auth is None:
            auth = cls._build(crawler)
            crawler._shopcrawl_auth = auth  # type: ignore[attr-defined]
        return auth

    @classmethod
    def _build(cls, crawler: Crawler) -> CrawlAuth:
        config = crawl_config(crawler)
        settings = crawler.settings
        if not uses_stored_grant(settings, config):
            creds = credentials_from_settings(settings, needs_session=config.dialect.needs_session)
            return cls(crawler, creds, None, config.api)
        seller = str(getattr(crawler.spider, "seller_id", "") or "")
        try:
            keeper = keeper_for(settings, config, seller)
        except CredentialsError as exc:
            raise ConfigError(str(exc)) from None
        auth = cls(crawler, _credentials(settings, keeper.grant), keeper, config.api)
        warning = expiry_warning(keeper.grant)
        if warning:
            logger.warning("Authorisation: %s", warning)
        return auth

    @property
    def grant(self) -> Grant | None:
        return self.keeper.grant if self.keeper is not None else None

    def warning(self) -> str:
        grant = self.grant
        return expiry_warning(grant) if grant is not None else ""

    # -- pausing ----------------------------------------------------------------------------------

    async def ready(self) -> None:
        """Returns at once, or when the refresh in progress is over: no call goes out meanwhile."""
        if self._refreshing is None:
            return
        waiter: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(waiter)
        await deferred_to_future(waiter)

    def sign_with(self, request: Request) -> Credentials:
        self.signed[request] = self.generation
        return self.credentials

    # -- an expired credential --------------------------------------------------------------------

    def expired(self, error: ApiError) -> bool:
        """Whether a refused credential has expired, rather than being wrong or revoked."""
        if error.sub_code == "session-expired":
            return True
        grant = self.grant
        return grant is not None and grant.expired(skew=EXPIRY_SKEW_SECONDS)

    async def renew(self, request: Request, error: ApiError) -> str | None:
        """After the API refused the credential ``request`` was signed with: None when the request
        may be sent again (refreshed now, or already by another call or worker), else the one line
        the crawl stops with."""
        api = self.api
        if self._failure is not None:
            return self._failure
        if self.keeper is None:
            return (
                f"{error.describe()} -> SHOPCRAWL_SESSION was refused and shopcrawl cannot refresh it: "
                f"set a valid one, or unset it and {login_hint(api)}"
            )
        if self.signed.get(request, self.generation) < self.generation:
            return None  # signed before the last refresh: the new token goes out on the resend
        if self._refreshing is None:
            if not self.expired(error):
                seller = self.keeper.grant.seller
                return (
                    f"{error.describe()} -> the stored {api} credential of seller {seller} was refused "
                    f"before its expiry (revoked, or of another app or seller): {login_hint(api)}"
                )
            if time.monotonic() - self._refreshed_at < MIN_REFRESH_GAP_SECONDS:
                hint = login_hint(api)
                return f"{error.describe()} -> the credential refreshed moments ago was refused too: {hint}"
            self._refreshing = threads.deferToThread(self.keeper.refresh_rejected, self.credentials.session)
            self._refreshing.addBoth(self._refreshed)
            logger.info("The API refused the credential as expired (%s); refreshing it", error.describe())
        await self.ready()
        return self._failure

    def _refreshed(self, result: Any) -> None:
        self._refreshing = None
        if isinstance(result, Grant):
            self.credentials = _credentials(self.crawler.settings, result)
            self.generation += 1
            self._refreshed_at = time.monotonic()
            stats = self.crawler.stats
            assert stats is not None and self.keeper is not None
            stats.set_value(REFRESHED_STAT, self.keeper.refreshes)  # refreshes this process sent
            stats.inc_value(RENEWED_STAT)  # new tokens taken up (refreshed here or by another worker)
        else:
            exc = getattr(result, "value", result)
            if isinstance(exc, LoginNeeded):
                self._failure = str(exc)
            else:
                self._failure = f"the credential refresh failed ({type(exc).__name__}: {exc})"
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)


def _credentials(settings: SettingsLike | Mapping[str, Any], grant: Grant) -> Credentials:
    base = credentials_from_settings(settings, needs_session=False)  # type: ignore[arg-type]
    return Credentials(
        app_key=base.app_key, secret=base.secret, session=grant.access_token, sign_method=base.sign_method
    )

"""Keeps one grant usable: refresh before a crawl when it expires soon, refresh once when the API
refuses it as expired, renew 1688's refresh token with ``postponeToken`` near its timeout.

One refresh at a time per (api, app key, seller): a lock on the credentials file for the processes
of one machine, and with ``REDIS_URL`` a Redis lock for every machine (named by hashes; it holds no
token). Whoever gets the lock re-reads the file first: if another worker refreshed meanwhile, that
token is used and nothing is sent. TOP may rotate the refresh token on every refresh (the old one
stops working), so every worker must read and write the same file, or a worker holding a stale
refresh token is refused and stops with the login hint.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from shopcrawl.auth.grants import CredentialsFile, Grant
from shopcrawl.auth.oauth import POSTPONE_WINDOW_SECONDS, AopOAuth, OAuthClient, OAuthError
from shopcrawl.distributed import keys as K

logger = logging.getLogger(__name__)

LOCK_SECONDS = 120  # a refresh holding the Redis lock longer than this has died; the lock lapses
LOCK_WAIT_SECONDS = 150


class LoginNeeded(Exception):
    """Nothing can be refreshed, or the refresh was refused: the seller must authorise again. The
    message is one line ending in the login command and holds no token."""


def login_hint(api: str) -> str:
    return f"run shopcrawl auth login --api {api}"


def lock_key(grant: Grant) -> str:
    digest = hashlib.sha256(f"{grant.api}|{grant.app_key}|{grant.seller}".encode()).hexdigest()[:24]
    return K.auth_lock_key(digest)


class Keeper:
    def __init__(
        self, file: CredentialsFile, client: OAuthClient, grant: Grant, *, redis_url: str | None = None
    ) -> None:
        self.file = file
        self.client = client
        self.grant = grant
        self.redis_url = redis_url
        self.refreshes = 0

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self.redis_url:
                import redis

                server = redis.Redis.from_url(self.redis_url, socket_connect_timeout=10, socket_timeout=30)
                stack.callback(server.close)
                lock: Any = server.lock(
                    lock_key(self.grant), timeout=LOCK_SECONDS, blocking_timeout=LOCK_WAIT_SECONDS
                )
                if not lock.acquire():
                    raise LoginNeeded(
                        f"another worker held the refresh lock of seller {self.grant.seller} for over "
                        f"{LOCK_WAIT_SECONDS} s; try again, or {login_hint(self.grant.api)}"
                    )
                stack.callback(_release, lock)
            stack.enter_context(self.file.locked())
            yield

    def _reload(self) -> Grant:
        for grant in self.file.load():
            if grant.key == self.grant.key:
                self.grant = grant
                return grant
        raise LoginNeeded(
            f"the authorisation of seller {self.grant.seller} is no longer in {self.file.path}: "
            f"{login_hint(self.grant.api)}"
        )

    def ensure_fresh(self, min_ttl: float, *, force: bool = False) -> Grant:
        """The grant, refreshed first when it expires within ``min_ttl`` seconds (always with
        ``force``, if it can be); 1688's refresh token renewed when within 30 days of its timeout.
        Raises LoginNeeded when the grant has expired and cannot be refreshed."""
        with self._exclusive():
            grant = self._reload()
            if grant.expired(skew=min_ttl) or (force and grant.refreshable()):
                grant = self._refresh(grant)
            return self._maybe_postpone(grant)

    def refresh_rejected(self, rejected_token: str) -> Grant:
        """After the API refused ``rejected_token`` as expired: the grant another worker refreshed
        meanwhile, or a refresh now. Raises LoginNeeded."""
        with self._exclusive():
            grant = self._reload()
            if grant.access_token != rejected_token and not grant.expired():
                return grant  # refreshed by another worker (or by `shopcrawl auth refresh`)
            return self._refresh(grant)

    def _refresh(self, grant: Grant) -> Grant:
        api = grant.api
        if not grant.refreshable():
            why = "cannot be refreshed" if not grant.refresh_token else "has a refresh token that expired"
            raise LoginNeeded(
                f"the {_name(api)} of seller {grant.seller} {_expiry(grant)} and {why}: {login_hint(api)}"
            )
        try:
            fresh = self.client.refresh(grant)
        except OAuthError as exc:
            what = "failed" if exc.error in ("network", "http", "bad_answer") else "was refused"
            raise LoginNeeded(
                f"refreshing the {_name(api)} of seller {grant.seller} {what} ({exc}): {login_hint(api)}"
            ) from None
        fresh = replace(fresh, warned_at=grant.warned_at)
        self._store(fresh)
        self.refreshes += 1
        logger.info(
            "Refreshed the %s of seller %s (app %s); it now expires %s",
            _name(api),
            grant.seller,
            grant.app_key,
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(fresh.expires_at))
            if fresh.expires_at
            else "never",
        )
        return fresh

    def _maybe_postpone(self, grant: Grant) -> Grant:
        if not isinstance(self.client, AopOAuth) or not grant.refreshable() or not grant.refresh_expires_at:
            return grant
        if grant.refresh_expires_at - time.time() > POSTPONE_WINDOW_SECONDS:
            return grant
        if grant.expired():
            grant = self._refresh(grant)
        try:
            renewed = self.client.postpone(grant)
        except OAuthError as exc:
            logger.warning(
                "Could not renew the refresh token of 1688 seller %s with postponeToken (%s); it expires %s",
                grant.seller,
                exc,
                time.strftime("%Y-%m-%d", time.gmtime(grant.refresh_expires_at)),
            )
            return grant
        self._store(renewed)
        logger.info("Renewed the refresh token of 1688 seller %s (postponeToken)", grant.seller)
        return renewed

    def _store(self, grant: Grant) -> None:
        self.file.put(grant)
        self.grant = grant


def _release(lock: Any) -> None:
    with contextlib.suppress(Exception):  # an expired lock is already gone
        lock.release()


def _name(api: str) -> str:
    return "TOP session" if api == "top" else "1688 access token"


def _expiry(grant: Grant) -> str:
    if not grant.expires_at:
        return "was refused"
    moment = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(grant.expires_at))
    return f"expired at {moment}" if grant.expired() else f"expires at {moment}"

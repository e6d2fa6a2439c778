"""Run the real sandbox in a subprocess for tests: ``with run_sandbox("--items", "50") as sb: ...``.

The child binds port 0 and prints its URL as the first stdout line once it listens; we wait for that
line with a bounded ``selectors`` wait (no sleeps), and terminate the child on exit. Only urllib is
used to talk to it, on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shopcrawl.platforms import top
from tests.services import first_line, stop

APP_KEY = "sandbox-app-key"
APP_SECRET = "sandbox-app-secret"
SESSION = "sandbox-session"
START_TIMEOUT = 30.0


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class SandboxProc:
    url: str
    base: str
    process: subprocess.Popen[bytes]
    app_key: str = APP_KEY
    secret: str = APP_SECRET
    session: str = SESSION

    def _control(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> Any:
        return self._control("/_sandbox/stats")

    def reset_stats(self) -> Any:
        return self._control("/_sandbox/reset-stats", {})

    def mutate(self, seller: str | None = None, **kinds: int) -> Any:
        """``POST /_sandbox/mutate``: change the shop of ``seller`` (None: the default shop)."""
        body = kinds if seller is None else {"seller": seller, **kinds}
        return self._control("/_sandbox/mutate", body)

    def shop(self, seller: str | None = None, include_instock: bool = False) -> Any:
        """``GET /_sandbox/shop``: the items of the shop of ``seller`` (None: the default shop)."""
        query = {"seller": seller} if seller is not None else {}
        if include_instock:
            query["all"] = "1"
        return self._control("/_sandbox/shop" + ("?" + urllib.parse.urlencode(query) if query else ""))

    def shops(self) -> Any:
        """``GET /_sandbox/shops``: ``[{"seller", "items", "session"}]``, the default shop first."""
        return self._control("/_sandbox/shops")

    def bad_items(self, seller: str | None = None) -> Any:
        query = "?" + urllib.parse.urlencode({"seller": seller}) if seller is not None else ""
        return self._control("/_sandbox/bad-items" + query)

    def oauth(self) -> Any:
        """``GET /_sandbox/oauth``: OAuth call counts, expired-token answers, lifetimes, live tokens."""
        return self._control("/_sandbox/oauth")

    def oauth_control(self, **body: Any) -> Any:
        """``POST /_sandbox/oauth``: any of token_ttl, refresh_ttl, revoke_refresh, expire_access."""
        return self._control("/_sandbox/oauth", body)

    def sign_params(
        self,
        method: str,
        *,
        secret: str | None = None,
        app_key: str | None = None,
        session: str | None = None,
        sign_method: str = "hmac-sha256",
        now: datetime | None = None,
        system: Mapping[str, str] | None = None,
        **business: str,
    ) -> dict[str, str]:
        """Signed params; ``system`` overrides/adds system params (then the request is re-signed)."""
        params = top.signed_params(
            {"method": method, **business},
            app_key=self.app_key if app_key is None else app_key,
            secret=self.secret if secret is None else secret,
            session=self.session if session is None else session,
            sign_method=sign_method,
            now=now or datetime.now(top.GMT8),
        )
        if system:
            params.update(system)
            params["sign"] = top.sign(params, self.secret if secret is None else secret, sign_method)
        return params

    def post(
        self, params: Mapping[str, str], *, query: Mapping[str, str] | None = None, timeout: float = 30
    ) -> Reply:
        url = self.url + ("?" + urllib.parse.urlencode(query) if query else "")
        data = urllib.parse.urlencode(params).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
        return _send(request, timeout)

    def get(self, params: Mapping[str, str], timeout: float = 30) -> Reply:
        return _send(urllib.request.Request(self.url + "?" + urllib.parse.urlencode(params)), timeout)

    def call(self, method: str, **kwargs: Any) -> Any:
        """Sign (see :meth:`sign_params`), POST, and decode the JSON body."""
        reply = self.post(self.sign_params(method, **kwargs))
        assert reply.status == 200, reply
        return reply.json()


def _send(request: urllib.request.Request, timeout: float) -> Reply:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read(), response.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.read(), error.headers.get("Content-Type", ""))


@contextmanager
def run_sandbox(*args: str) -> Iterator[SandboxProc]:
    """Start ``python -m shopcrawl.sandbox --port 0 *args``; yield once it listens; stop it after."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "shopcrawl.sandbox", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            try:
                url = first_line(process, START_TIMEOUT)
            except (TimeoutError, RuntimeError) as error:
                stderr.seek(0)
                raise RuntimeError(f"{error}; stderr:\n{stderr.read().decode(errors='replace')}") from None
            assert url.startswith("http://127.0.0.1:") and url.endswith("/router/rest"), url
            yield SandboxProc(url=url, base=url.removesuffix("/router/rest"), process=process)
        finally:
            stop(process)

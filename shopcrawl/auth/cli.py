"""``shopcrawl auth login | status | refresh``: obtain, show and refresh the stored authorisations.

The app key and secret come from ``SHOPCRAWL_APP_KEY`` and ``SHOPCRAWL_APP_SECRET``; the file from
``SHOPCRAWL_CREDENTIALS``; ``SHOPCRAWL_OAUTH_URL`` and (for 1688's token endpoints)
``SHOPCRAWL_API_URL`` point elsewhere than production, e.g. at the sandbox. Nothing here prints a token.
"""

from __future__ import annotations

import argparse
import html
import ipaddress
import json
import os
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from shopcrawl.auth.grants import (
    AUTH_APIS,
    CredentialsError,
    CredentialsFile,
    Grant,
    credentials_path,
    expiry_warning,
    human_seconds,
)
from shopcrawl.auth.keeper import Keeper, LoginNeeded
from shopcrawl.auth.oauth import OAuthClient, OAuthError, oauth_client
from shopcrawl.config import platform_for
from shopcrawl.platforms import get_dialect

EXIT_FAILED, EXIT_USAGE = 1, 2


def _env(name: str) -> str:
    return str(os.environ.get(name) or "").strip()


def _client(api: str, app_key: str) -> OAuthClient:
    secret = _env("SHOPCRAWL_APP_SECRET")
    if not app_key or not secret:
        raise CredentialsError("set SHOPCRAWL_APP_KEY and SHOPCRAWL_APP_SECRET (the app's key and secret)")
    api_url = _env("SHOPCRAWL_API_URL") or get_dialect(api, platform_for(api, "taobao")).production_url
    return oauth_client(api, app_key, secret, oauth_url=_env("SHOPCRAWL_OAUTH_URL") or None, api_url=api_url)


def _file() -> CredentialsFile:
    return CredentialsFile(credentials_path())


def _when(ts: float) -> str:
    if not ts:
        return "unknown"
    left = ts - time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
    return f"{stamp} (in {human_seconds(left)})" if left > 0 else f"{stamp} (expired)"


def _describe(grant: Grant) -> str:
    who = grant.seller + (f" ({grant.nick})" if grant.nick and grant.nick != grant.seller else "")
    what = "session" if grant.api == "top" else "access token"
    lines = [f"{'TOP' if grant.api == 'top' else '1688'} seller {who}, app {grant.app_key}"]
    lines.append(f"  {what} expires {_when(grant.expires_at)}")
    if grant.refreshable():
        lines.append(f"  refresh token valid until {_when(grant.refresh_expires_at)}")
    else:
        lines.append("  cannot be refreshed: the seller must authorise again before it expires")
    return "\n".join(lines)


# -- login ----------------------------------------------------------------------------------------


class _Callback(BaseHTTPRequestHandler):
    """The one-shot redirect listener: takes ``?code=&state=`` on the redirect path."""

    server: _CallbackServer

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != self.server.path:
            self._answer(404, "Not the shopcrawl redirect path.")
            return
        query = dict(urllib.parse.parse_qsl(parts.query))
        if query.get("state") != self.server.state:
            self._answer(400, "This redirect does not belong to the login in progress (state differs).")
            return
        if query.get("error"):
            self.server.result = ("error", f"{query['error']}: {query.get('error_description', '')}")
            self._answer(400, "The authorisation was refused. You can close this window.")
        elif query.get("code"):
            self.server.result = ("code", query["code"])
            self._answer(200, "shopcrawl is authorised. You can close this window.")
        else:
            self._answer(400, "The redirect carries no code.")
            return
        self.server.done.set()

    def _answer(self, status: int, text: str) -> None:
        body = (
            f"<!doctype html><meta charset=utf-8><title>shopcrawl</title><p>{html.escape(text)}</p>".encode()
        )
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the code: never log it
        return


class _CallbackServer(HTTPServer):
    def __init__(self, address: tuple[str, int], path: str, state: str) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Callback)
        self.path = path
        self.state = state
        self.result: tuple[str, str] | None = None
        self.done = threading.Event()


def _loopback(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CredentialsError(f"--listen must be HOST:PORT on loopback, e.g. 127.0.0.1:8765; got {listen!r}")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CredentialsError(f"--listen must be a loopback address (127.0.0.1, ::1); got {host!r}")
    return host, int(port)


def _code_from(text: str, state: str | None) -> str:
    """A pasted code, or the whole redirect URL it came on (its state is checked, unless ``state`` is
    None: a code given with ``--code`` came from an authorise URL of an earlier run)."""
    text = text.strip()
    if "code=" in text or "error=" in text:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(text).query or text))
        if query.get("error"):
            raise OAuthError(query["error"], query.get("error_description", ""))
        if state is not None and query.get("state") not in (None, state):
            raise CredentialsError("the pasted URL belongs to another login (its state differs); start again")
        text = query.get("code", "")
    if not text:
        raise CredentialsError("no code given")
    return text


def _login(args: argparse.Namespace) -> int:
    app_key = args.app_key or _env("SHOPCRAWL_APP_KEY")
    client = _client(args.api, app_key)
    file = _file()
    file.load()  # refuse an unsafe file before the seller authorises anything
    state = secrets.token_urlsafe(16)
    server: _CallbackServer | None = None
    if args.listen:
        host, port = _loopback(args.listen)
        server = _CallbackServer((host, port), "/callback", state)
        bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        redirect_uri = args.redirect_uri or f"http://{shown}:{bound_port}/callback"
        server.path = urllib.parse.urlsplit(redirect_uri).path or "/callback"
    elif args.redirect_uri:
        redirect_uri = args.redirect_uri
    else:
        raise CredentialsError(
            "give --listen 127.0.0.1:PORT (the redirect comes back to this machine) or --redirect-uri "
            "(the app's registered callback; you paste the code or the URL you land on)"
        )
    print("Open this URL in a browser where the seller is logged in, and approve:", flush=True)
    print(client.authorize_url(redirect_uri, state), flush=True)
    try:
        if server is not None:
            print(f"Waiting up to {args.timeout:g} s for the redirect to {redirect_uri} ...", flush=True)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            thread.start()
            arrived = server.done.wait(args.timeout)
            server.shutdown()
            if not arrived or server.result is None:
                raise CredentialsError(f"no redirect arrived within {args.timeout:g} s; run the login again")
            kind, value = server.result
            if kind == "error":
                raise OAuthError(*value.split(": ", 1))
            code = value
        else:
            if args.code:
                code = _code_from(args.code, None)
            else:
                code = _code_from(input("Paste the code, or the whole URL you were sent to: "), state)
    finally:
        if server is not None:
            server.server_close()
    grant = client.exchange(code, redirect_uri)
    if args.seller and args.seller not in grant.names():
        raise CredentialsError(
            f"the seller who authorised is {grant.seller} ({grant.nick}), not {args.seller!r}; nothing stored"
        )
    file.put(grant)
    print("Authorised " + _describe(grant))
    print(f"Stored in {file.path}")
    warning = expiry_warning(grant)
    if warning:
        print(f"warning: {warning}")
    return 0


# -- status ---------------------------------------------------------------------------------------


def _selected(args: argparse.Namespace) -> list[Grant]:
    grants = _file().load()
    return [
        g
        for g in grants
        if (not args.api or g.api == args.api) and (not args.seller or args.seller in g.names())
    ]


def _status(args: argparse.Namespace) -> int:
    grants = _selected(args)
    now = time.time()
    if args.json:
        print(
            json.dumps({"file": str(credentials_path()), "grants": [g.public(now) for g in grants]}, indent=1)
        )
    elif not grants:
        print(f"no authorisations in {credentials_path()}: run shopcrawl auth login --api top|1688")
    else:
        header = ("API", "APP KEY", "SELLER", "TOKEN EXPIRES", "REFRESH", "STATE")
        rows = []
        for g in grants:
            refresh = (
                f"until {time.strftime('%Y-%m-%d', time.gmtime(g.refresh_expires_at))}"
                if g.refreshable(now)
                else "no"
            )
            if g.refreshable(now) and not g.refresh_expires_at:
                refresh = "yes"
            seller = g.seller + (f" ({g.nick})" if g.nick and g.nick != g.seller else "")
            rows.append((g.api, g.app_key, seller, _when(g.expires_at), refresh, g.state(now)))
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        for g in grants:
            warning = expiry_warning(g, now)
            if warning:
                print(f"warning: {warning}")
    return EXIT_FAILED if any(g.state(now) == "login needed" for g in grants) else 0


# -- refresh --------------------------------------------------------------------------------------


def _refresh(args: argparse.Namespace) -> int:
    app_key = _env("SHOPCRAWL_APP_KEY")
    grants = _selected(args)
    if not grants:
        print(f"no authorisations to refresh in {credentials_path()}", file=sys.stderr)
        return EXIT_FAILED
    failed = 0
    for grant in grants:
        label = f"{grant.api} seller {grant.seller} (app {grant.app_key})"
        if grant.app_key != app_key:
            print(f"skipped {label}: SHOPCRAWL_APP_KEY names another app")
            continue
        keeper = Keeper(_file(), _client(grant.api, app_key), grant, redis_url=_env("REDIS_URL") or None)
        try:
            fresh = keeper.ensure_fresh(args.min_ttl, force=not args.min_ttl)
        except LoginNeeded as exc:
            print(f"failed {label}: {exc}", file=sys.stderr)
            failed += 1
            continue
        done = "refreshed" if keeper.refreshes else "still valid"
        if not fresh.refreshable():
            done = "cannot be refreshed"
        print(f"{done}: {label}; token expires {_when(fresh.expires_at)}")
        warning = expiry_warning(fresh)
        if warning:
            print(f"warning: {warning}")
    return EXIT_FAILED if failed else 0


def _run(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result: int = func(args)
            return result
        except CredentialsError as exc:
            print(f"shopcrawl auth {args.auth_command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OAuthError as exc:
            print(f"shopcrawl auth {args.auth_command}: the platform refused: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print(f"shopcrawl auth {args.auth_command}: interrupted; nothing stored", file=sys.stderr)
            return EXIT_FAILED

    return run


def add_parser(sub: Any) -> None:
    auth = sub.add_parser("auth", help="obtain, show and refresh sellers' authorisations (TOP, 1688)")
    commands = auth.add_subparsers(dest="auth_command", required=True)
    login = commands.add_parser(
        "login", help="authorise a seller: print the URL, take the code, store the tokens"
    )
    login.add_argument("--api", choices=AUTH_APIS, required=True, help="the platform: top or 1688")
    login.add_argument(
        "--listen", help="catch the redirect on this loopback HOST:PORT (port 0: any free port)"
    )
    login.add_argument(
        "--redirect-uri",
        help="the app's registered callback URL (default with --listen: http://HOST:PORT/callback)",
    )
    login.add_argument(
        "--code", help="the code, or the whole URL the browser was sent to (else it is asked for)"
    )
    login.add_argument("--app-key", help="the app key (default: $SHOPCRAWL_APP_KEY)")
    login.add_argument("--seller", help="refuse to store unless this seller authorised")
    login.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the redirect (default 300)"
    )
    login.set_defaults(func=_run(_login))
    for name, text in (
        ("status", "who is authorised, for which app, until when (never shows a token)"),
        ("refresh", "refresh the stored tokens now (for cron)"),
    ):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("--api", choices=AUTH_APIS, help="only this platform")
        cmd.add_argument("--seller", help="only this seller (nick, user id or memberId)")
        if name == "status":
            cmd.add_argument("--json", action="store_true", help="machine-readable output")
            cmd.set_defaults(func=_run(_status))
        else:
            cmd.add_argument(
                "--min-ttl",
                type=float,
                default=0.0,
                help="only refresh tokens expiring within "
                "this many seconds (default 0: refresh every one that can be)",
            )
            cmd.set_defaults(func=_run(_refresh))

"""The ``shopcrawl`` command: ``sandbox`` (the local API emulator), ``demo`` (sandbox + crawl), ``status``,
``report`` and ``auth``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from shopcrawl.platforms import APIS, PLATFORMS


def _demo(args: argparse.Namespace) -> int:
    """Start a sandbox shop, crawl it into the embedded store, print the run summary."""
    shop = ["--items", str(args.items), "--seed", "7", "--api", args.api]
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "shopcrawl.sandbox", "--port", "0", *shop],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        url = sandbox.stdout.readline().strip()
        if not url.startswith("http"):
            print("shopcrawl demo: the sandbox did not start", file=sys.stderr)
            return 1
        print(f"sandbox: {url} ({args.items} items, API {args.api})")
        from shopcrawl.sandbox.local import crawl_command, crawl_env

        env = crawl_env(url, args.store, {"SHOPCRAWL_API": args.api, "SHOPCRAWL_PLATFORM": args.platform})
        command = crawl_command("demo", None, *(["-O", args.output] if args.output else []))
        return subprocess.call(command, env=env)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def _status(args: argparse.Namespace) -> int:
    """Show the live state of the runs in Redis."""
    import json

    import redis

    from shopcrawl.distributed.status import calls_per_second, run_statuses
    from shopcrawl.fleet.status import fleet_status
    from shopcrawl.stores import redact_uri

    if not args.redis_url:
        print("shopcrawl status: set REDIS_URL or pass --redis-url", file=sys.stderr)
        return 2
    server = redis.Redis.from_url(args.redis_url, socket_connect_timeout=5)
    try:
        runs = run_statuses(server, args.seller)
        rate = calls_per_second(server)
        fleet = fleet_status(server)
    except redis.RedisError as exc:
        print(f"shopcrawl status: cannot reach Redis at {redact_uri(args.redis_url)}: {exc}", file=sys.stderr)
        return 2
    if args.seller:
        fleet["shops"] = [s for s in fleet["shops"] if s["seller"] == args.seller]
        fleet["parked"] = [p for p in fleet["parked"] if p["shop"].split("|", 2)[-1] == args.seller]
    if args.json:
        body = {"calls_per_second": rate, "runs": [r.as_dict() for r in runs], "fleet": fleet}
        print(json.dumps(body, ensure_ascii=False))
        return 0
    print(f"API calls/s (last 10 s, all workers): {rate:.1f}")
    _print_fleet(fleet)
    if not runs:
        print("no runs in Redis" + (f" for seller {args.seller}" if args.seller else ""))
        return 0
    print("runs:")
    header = ("SELLER", "RUN", "STATE", "LISTED", "STORED", "QUEUED", "LEASED", "WORKERS", "CALLS")
    rows = [
        (
            r.seller_id,
            r.run_id,
            r.state,
            f"{r.listed:,}/{'?' if r.declared_total is None else f'{r.declared_total:,}'}",
            f"{r.stored:,}",
            f"{r.queued:,}",
            f"{r.leased:,}",
            str(r.workers_alive),
            f"{r.api_calls:,}",
        )
        for r in runs
    ]
    _table(header, rows)
    return 0


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _print_fleet(fleet: dict[str, Any]) -> None:
    import time

    from shopcrawl.fleet.status import human_age

    shops = fleet["shops"]
    if not shops and not fleet["queue_depth"] and not fleet["workers_alive"]:
        return
    due = sum(1 for s in shops if s["due"])
    overdue = sum(1 for s in shops if s["overdue"])
    print(
        f"fleet: {fleet['workers_alive']} workers alive; queue {fleet['queue_depth']}, running "
        f"{fleet['running']}, retrying {fleet['retrying']}, parked {len(fleet['parked'])}; "
        f"{len(shops)} shops, {due} due, {overdue} overdue"
    )
    now = time.time()
    rows = []
    for s in shops:
        next_due = "-" if s["next_due"] is None else f"in {max(0, int(s['next_due'] - now))} s"
        rows.append(
            (
                s["seller"],
                s["api"],
                s["state"] + (" OVERDUE" if s["overdue"] else ""),
                next_due,
                s["last_status"] or "-",
                s["last_complete_run"] or "-",
                human_age(s["last_complete_age"]),
            )
        )
    if rows:
        _table(("SELLER", "API", "STATE", "NEXT DUE", "LAST RUN", "LAST COMPLETE RUN", "AGE"), rows)
    for p in fleet["parked"]:
        print(f"parked: {p['shop']} after {p.get('attempts', 0)} attempts: {p.get('reason', '')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopcrawl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "sandbox",
        help="run the local TOP API emulator (see `shopcrawl sandbox --help`)",
        add_help=False,
    )
    demo = sub.add_parser(
        "demo", help="crawl a sandbox demo shop into the embedded store and print the summary"
    )
    demo.add_argument("--items", type=int, default=3000, help="items in the demo shop (default 3000)")
    demo.add_argument(
        "--store",
        default="sqlite:///shopcrawl-demo.db",
        help="store URI (default sqlite:///shopcrawl-demo.db)",
    )
    demo.add_argument("-O", "--output", help="also export the items to this file (.jsonl or .csv)")
    demo.add_argument("--api", choices=APIS, default="top", help="the API to crawl through (default top)")
    demo.add_argument(
        "--platform", choices=PLATFORMS, default="taobao", help="the gateway's platform (default taobao)"
    )
    demo.set_defaults(func=_demo)
    status = sub.add_parser(
        "status", help="show the fleet (queue, shops, parked jobs) and the live distributed runs in Redis"
    )
    status.add_argument("--seller", help="only this seller's runs")
    status.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL"), help="Redis to read (default: $REDIS_URL)"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)
    from shopcrawl.monitor.report import add_parser as add_report_parser

    add_report_parser(sub)
    from shopcrawl.auth.cli import add_parser as add_auth_parser

    add_auth_parser(sub)
    from shopcrawl.fleet.cli import add_parser as add_fleet_parser

    add_fleet_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        from shopcrawl.sandbox.server import main as sandbox_main

        return sandbox_main(argv[1:])
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

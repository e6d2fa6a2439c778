"""The ``shopcrawl`` command: ``sandbox`` (the local TOP emulator) and ``demo`` (sandbox + crawl)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    """Start a sandbox shop, crawl it into the embedded store, print the run summary."""
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "shopcrawl.sandbox", "--port", "0", "--items", str(args.items), "--seed", "7"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        url = sandbox.stdout.readline().strip()
        if not url.startswith("http"):
            print("shopcrawl demo: the sandbox did not start", file=sys.stderr)
            return 1
        print(f"sandbox: {url} ({args.items} items)")
        from shopcrawl.sandbox.local import crawl_command, crawl_env

        env = crawl_env(url, args.store)
        command = crawl_command("demo", None, *(["-O", args.output] if args.output else []))
        return subprocess.call(command, env=env)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


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
    demo.set_defaults(func=_demo)
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

"""The README is the operator's manual: every setting, stats key and command must be in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shopcrawl.cli import build_parser
from shopcrawl.config import DEFAULTS

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_setting_is_in_the_settings_table(name):
    assert re.search(rf"^\| `{name}` \|", README, re.M), name


def test_every_stats_key_is_documented():
    source = "\n".join(p.read_text() for p in (REPO / "shopcrawl").rglob("*.py"))
    keys = set(re.findall(r'"(shopcrawl/[a-z_/]*[a-z_])"', source))  # prefixes end in "/": not keys
    keys |= {k + "/" for k in re.findall(r'f"(shopcrawl/[a-z_/]+?)/\{', source)}
    documented = set(re.findall(r"`(shopcrawl/[a-z_/]+?)(?:/<[a-z_]+>)?`", README))
    documented |= {k + "/" for k in re.findall(r"`(shopcrawl/[a-z_/]+?)/<[a-z_]+>`", README)}
    assert keys - documented == set()


def test_every_cli_command_has_help_and_a_readme_entry():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    # argparse keeps a command's help= only in _choices_actions, and only when it was given.
    helps = {choice.dest: choice.help for choice in subparsers._choices_actions}
    for name in subparsers.choices:
        assert (helps.get(name) or "").strip(), f"`shopcrawl {name}` has no help text"
        assert f"`shopcrawl {name}" in README, name


def test_sandbox_options_are_documented():
    out = subprocess.run(
        [sys.executable, "-m", "shopcrawl.sandbox", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"COLUMNS": "500", "PATH": ""},
    ).stdout
    options = set(re.findall(r"^\s+(--[a-z0-9-]+)", out, re.M)) - {"--help"}
    missing = {opt for opt in options if f"`{opt}`" not in README}
    assert missing == set()

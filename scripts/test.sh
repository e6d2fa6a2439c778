#!/usr/bin/env bash
# Set up, then run every check CI runs: ruff, mypy --strict, and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Redis for the distributed tests: Debian's redis-server (the tests start their own on loopback).
if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "scripts/test.sh: redis-server is missing: sudo apt-get install redis-server" >&2
    fi
fi
# Chromium for the HTML report's rendering test: Debian's chromium (headless; in CI a missing one fails it).
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "scripts/test.sh: chromium is missing: sudo apt-get install chromium" >&2
    fi
fi
# The MongoDB-wire test server, built once and cached outside the repository (unless a server is given).
if [ -z "${SHOPCRAWL_TEST_MONGO_URI:-}" ]; then
    SHOPCRAWL_FERRETDB_BIN="$(bash scripts/ferretdb.sh)"
    export SHOPCRAWL_FERRETDB_BIN
fi
.venv/bin/ruff check shopcrawl tests benchmarks
.venv/bin/ruff format --check shopcrawl tests benchmarks
.venv/bin/mypy
status=0
# Two test processes, a test file each at a time: most tests wait on crawls in subprocesses, and the
# MongoDB SIGKILL test (about 2 minutes on the FerretDB test server) runs beside the rest. Without
# arguments, the tests marked serial (the fleet's 5-minute run) then run alone: they measure timing.
if [ "$#" -eq 0 ]; then
    .venv/bin/pytest -n 2 --dist loadfile -m "not serial" || status=$?
    if [ "$status" -eq 0 ]; then
        .venv/bin/pytest -m serial || status=$?
    fi
else
    .venv/bin/pytest -n 2 --dist loadfile "$@" || status=$?
fi
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$status"

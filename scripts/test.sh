#!/usr/bin/env bash
# Set up, then run every check CI runs: ruff, mypy --strict, and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The MongoDB-wire test server, built once and cached outside the repository (unless a server is given).
if [ -z "${SHOPCRAWL_TEST_MONGO_URI:-}" ]; then
    SHOPCRAWL_FERRETDB_BIN="$(bash scripts/ferretdb.sh)"
    export SHOPCRAWL_FERRETDB_BIN
fi
.venv/bin/ruff check shopcrawl tests benchmarks
.venv/bin/ruff format --check shopcrawl tests benchmarks
.venv/bin/mypy
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$status"

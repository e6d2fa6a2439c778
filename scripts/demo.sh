#!/usr/bin/env bash
# The main job against the sandbox: set up, start a sandbox shop, crawl it into the embedded
# store (shopcrawl-demo.db), print the run summary. Extra arguments go to `shopcrawl demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/shopcrawl demo "$@"

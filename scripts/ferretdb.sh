#!/usr/bin/env bash
# Builds the MongoDB-wire test server (FerretDB v1.24.2 with its SQLite backend, from the Go module
# proxy) once, caches the binary outside the repository, and prints its path. Later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/../tools/ferretdb"
cache="${SHOPCRAWL_CACHE:-$HOME/.cache/shopcrawl}"
key=$(cat go.mod go.sum main.go | sha256sum | cut -c1-12)
bin="$cache/ferretdb-v1.24.2-$key/ferretdb"
if [ ! -x "$bin" ]; then
    command -v go >/dev/null || { echo "scripts/ferretdb.sh: Go is needed to build the test MongoDB server" >&2; exit 1; }
    mkdir -p "$(dirname "$bin")"
    echo "building FerretDB v1.24.2 into $bin (once)" >&2
    go build -trimpath -o "$bin.tmp" . && mv "$bin.tmp" "$bin"
fi
echo "$bin"

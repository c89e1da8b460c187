#!/usr/bin/env bash
# Builds the Go interop peer and driver into tests/interop/bin/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/../bin"
mkdir -p "$bin"
cd "$here"
go mod download
go build -trimpath -o "$bin/go-peer" ./cmd/peer
go build -trimpath -o "$bin/go-drive" ./cmd/drive
echo "built $(cd "$bin" && pwd)/go-peer and go-drive" >&2

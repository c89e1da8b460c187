#!/usr/bin/env bash
# README command one. The one-command demo (relay + sample agent server + connected host)
# arrives with the host connector; until then this runs what exists: the yamux benchmark
# over a loopback WebSocket.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
exec .venv/bin/python bench/mux.py "$@"

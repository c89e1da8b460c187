#!/usr/bin/env bash
# README command one: the whole system on this machine — a relay on SQLite, a sample
# local agent server, a user and token, and a connected host — then the URL to open.
# Extra arguments go to `agent-relay demo` (e.g. --port 0 for any free port).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh runtime  # the demo needs no test tools
exec .venv/bin/agent-relay demo "$@"

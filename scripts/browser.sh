#!/usr/bin/env bash
# The browser SDK's and pages' toolchain (clients/browser/): installs the pinned npm
# packages from package-lock.json, then builds the bundle into
# src/agent_relay/web/static/ (committed, so pip installs need no Node).
#   scripts/browser.sh            install and build (after editing clients/browser/src)
#   scripts/browser.sh install    install only (scripts/test.sh: tests/browser rebuilds
#                                 into a temporary directory and compares)
set -euo pipefail
cd "$(dirname "$0")/../clients/browser"
npm ci --no-audit --no-fund >&2
if [ "${1:-}" != "install" ]; then
  node build.mjs
fi

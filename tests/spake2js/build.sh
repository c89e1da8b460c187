#!/usr/bin/env bash
# Installs the pinned @noble packages the independent SPAKE2 (spake2.mjs) runs on.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund >&2

#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed, for the browser end-to-end tests
# (tests/browser/) and bench/browser.py, and prints its path. Playwright drives this
# browser; no browser build is downloaded.
set -euo pipefail
if ! command -v chromium >/dev/null; then
  bash "$(dirname "$0")/apt-install.sh" chromium fonts-dejavu-core
fi
command -v chromium

#!/usr/bin/env bash
# Makes sure Caddy is installed, for the TLS end-to-end test (tests/integration/test_tls.py),
# and prints its path. Installs Debian's `caddy` package when it is missing; the test runs
# its own Caddy on loopback with a throwaway CA.
set -euo pipefail
if ! command -v caddy >/dev/null; then
  bash "$(dirname "$0")/apt-install.sh" caddy
fi
command -v caddy

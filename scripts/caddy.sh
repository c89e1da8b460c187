#!/usr/bin/env bash
# Makes sure Caddy is installed, for the TLS end-to-end test (tests/integration/test_tls.py),
# and prints its path. Installs Debian's `caddy` package with apt-get when it is missing
# (needs root). The package's system service is not started here; the test runs its own
# Caddy on loopback with a throwaway CA.
set -euo pipefail
if ! path=$(command -v caddy); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "caddy is not installed; run as root or: apt-get install caddy" >&2
    exit 1
  fi
  echo "== installing Caddy (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # A policy-rc.d that says no keeps the package's service from starting where an init
  # system runs (it would take ports 80 and 443); removed again afterwards.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends caddy >&2
  path=$(command -v caddy)
fi
echo "$path"

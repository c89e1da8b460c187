#!/usr/bin/env bash
# Installs the given Debian packages with apt-get (needs root), keeping their system
# services (caddy, sshd) from starting where an init system runs: the tests start their
# own on loopback.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: $*; run as root or: apt-get install $*" >&2
  exit 1
fi
echo "== installing $* (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "$@" >&2

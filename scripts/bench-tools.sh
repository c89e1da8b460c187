#!/usr/bin/env bash
# Makes sure the tools bench/e2e.py drives are installed: wrk (load), curl (downloads) and
# OpenSSH (the `ssh -R` comparison; the bench runs its own sshd with throwaway keys).
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v ssh >/dev/null || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if [ ${#missing[@]} -gt 0 ]; then
  bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
fi

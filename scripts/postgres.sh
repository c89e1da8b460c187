#!/usr/bin/env bash
# Makes sure the PostgreSQL server programs (initdb, pg_ctl, postgres) are installed, for
# the integration tests, and prints the directory that holds them. Installs Debian's
# `postgresql` package with apt-get when they are missing (needs root). The tests start
# their own throwaway cluster; no system cluster is created or started here.
set -euo pipefail

find_bindir() {
  local dir
  if dir=$(command -v initdb 2>/dev/null); then
    dir=$(dirname "$(readlink -f "$dir")")
    if [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then echo "$dir"; return 0; fi
  fi
  # Debian keeps them off the PATH, one directory per major version; take the newest.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"; return 0
    fi
  done
  return 1
}

if ! find_bindir; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL (initdb) is not installed; run as root or: apt-get install postgresql" >&2
    exit 1
  fi
  echo "== installing PostgreSQL (apt-get)" >&2
  # Keep the package from creating (and trying to start) a `main` cluster.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/agent-relay-tests.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  find_bindir
fi

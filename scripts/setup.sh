#!/usr/bin/env bash
# Creates a virtual environment and installs agent-relay in it with its pinned
# dependencies. Idempotent.
#   bash scripts/setup.sh           the runtime and the dev tools (tests, lint, types),
#                                   and the compiled core when cargo is on the PATH
#   bash scripts/setup.sh runtime   the runtime only (what `scripts/demo.sh` needs)
# VENV chooses the environment's directory (default: .venv in the checkout).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
venv=${VENV:-.venv}
what=${1:-dev}
case "$what" in
  dev) spec='.[dev,webrtc]' ;;
  runtime) spec='.' ;;
  *) echo "usage: setup.sh [dev|runtime]" >&2; exit 2 ;;
esac
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "agent-relay needs Python >= 3.11 (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
hash=$(sha256sum pyproject.toml | cut -c1-16)
# A dev install holds the runtime too.
if [ ! -f "$venv/.installed-dev-$hash" ] && [ ! -f "$venv/.installed-$what-$hash" ]; then
  echo "installing the $what dependencies into $venv (first run only, about a minute)…" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
  rm -f "$venv"/.installed-*
  touch "$venv/.installed-$what-$hash"
  echo "dependencies installed" >&2
fi
# The compiled core (native/, docs/architecture.md): a dev setup builds it with maturin
# when cargo is on the PATH and installs it into the venv; without cargo, and in a
# runtime setup, agent-relay runs on its pure-Python core. scripts/native.sh caches the
# wheel in ~/.cache/agent-relay.
if [ "$what" = dev ] && command -v cargo >/dev/null; then
  native_hash=$(cd native && cat Cargo.toml Cargo.lock pyproject.toml src/*.rs | sha256sum | cut -c1-16)
  if [ ! -f "$venv/.native-$native_hash" ]; then
    wheel=$(VENV="$venv" bash scripts/native.sh "$venv/bin/python")
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      --force-reinstall "$wheel"
    rm -f "$venv"/.native-*
    touch "$venv/.native-$native_hash"
  fi
fi

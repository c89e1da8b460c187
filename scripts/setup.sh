#!/usr/bin/env bash
# Creates a virtual environment and installs agent-relay in it with its pinned
# dependencies. Idempotent.
#   bash scripts/setup.sh           the runtime and the dev tools (tests, lint, types)
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
if [ -f "$venv/.installed-dev-$hash" ] || [ -f "$venv/.installed-$what-$hash" ]; then
  exit 0
fi
echo "installing the $what dependencies into $venv (first run only, about a minute)…" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
rm -f "$venv"/.installed-*
touch "$venv/.installed-$what-$hash"
echo "dependencies installed" >&2

#!/usr/bin/env bash
# Creates .venv and installs agent-relay with its pinned dependencies. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "agent-relay needs Python >= 3.11 (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,webrtc]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

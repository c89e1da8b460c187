#!/usr/bin/env bash
# Builds the compiled core (native/: Rust, PyO3, maturin) as a wheel for a Python and
# prints the wheel's path. Cached in ~/.cache/agent-relay, keyed on native/'s sources
# and the Python: the wheel, and cargo's target directory (incremental rebuilds).
# Needs cargo on the PATH and maturin (the dev extra) in the venv.
#   scripts/native.sh [PYTHON]    default: .venv/bin/python
# VENV chooses the environment whose maturin builds (default: .venv in the checkout).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${VENV:-.venv}
python=${1:-$venv/bin/python}
tag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
key=$( (cd native && cat Cargo.toml Cargo.lock pyproject.toml src/*.rs; echo "$tag") |
  sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/agent-relay
wheels="$cache/native-wheels/$key"
mkdir -p "$cache"
exec 9>"$cache/native.lock"  # worktrees building at once share the target directory
flock 9
if ! ls "$wheels"/agent_relay_core-*.whl >/dev/null 2>&1; then
  echo "building the compiled core (native/, cargo; first run only, about a minute)…" >&2
  rm -rf "$wheels.tmp"
  CARGO_TARGET_DIR="$cache/native-target" "$venv/bin/maturin" build --release --locked \
    --quiet -m native/Cargo.toml -i "$python" -o "$wheels.tmp" >&2
  rm -rf "$wheels"
  mv "$wheels.tmp" "$wheels"
fi
ls "$wheels"/agent_relay_core-*.whl

#!/usr/bin/env bash
# Builds the interop peers (Go, Rust, JS) and the reference-like host and relay (refpeer) from their registries into tests/interop/bin/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/bin"
for lang in go rust js refpeer; do
  echo "== building $lang peer" >&2
  bash "$here/$lang/build.sh"
done

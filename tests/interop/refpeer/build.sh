#!/usr/bin/env bash
# Builds the reference-like host and relay (one binary, axum/hyper + tokio-yamux) and copies
# it to tests/interop/bin/ref-peer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin_dir="$here/../bin"
export CARGO_TARGET_DIR="$here/target"
cargo build --release --locked --manifest-path "$here/Cargo.toml"
mkdir -p "$bin_dir"
cp -f "$CARGO_TARGET_DIR/release/ref-peer" "$bin_dir/ref-peer.tmp"
mv -f "$bin_dir/ref-peer.tmp" "$bin_dir/ref-peer"
echo "built $bin_dir/ref-peer" >&2

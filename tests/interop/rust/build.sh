#!/usr/bin/env bash
# Builds the Rust interop peer (tokio-yamux) and copies it to tests/interop/bin/rust-peer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin_dir="$here/../bin"
export CARGO_TARGET_DIR="$here/target"
cargo build --release --locked --manifest-path "$here/Cargo.toml"
mkdir -p "$bin_dir"
cp -f "$CARGO_TARGET_DIR/release/rust-peer" "$bin_dir/rust-peer.tmp"
mv -f "$bin_dir/rust-peer.tmp" "$bin_dir/rust-peer"
echo "built $bin_dir/rust-peer" >&2

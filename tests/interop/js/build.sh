#!/usr/bin/env bash
# Installs the yamux-js interop peer's pinned dependencies and writes bin/js-peer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/../bin"
cd "$here"
npm ci --no-audit --no-fund >&2
mkdir -p "$bin"
tmp="$bin/.js-peer.$$"
cat >"$tmp" <<WRAPPER
#!/bin/sh
exec node "$here/peer.js" "\$@"
WRAPPER
chmod +x "$tmp"
mv -f "$tmp" "$bin/js-peer"
echo "built $(cd "$bin" && pwd)/js-peer" >&2

#!/usr/bin/env bash
# Makes sure the tools bench/e2e.py drives are installed: wrk (load), curl (downloads),
# OpenSSH (the `ssh -R` comparison; the bench runs its own sshd with throwaway keys), and
# the tunnel peers it compares against, built from their registries at pinned versions:
# frp v0.71.0 and chisel v1.12.1 (Go module proxy; bench/peers/go.mod + go.sum) and
# rathole 0.5.0 (crates.io; bench/peers/rathole-0.5.0.Cargo.lock: its own lock with `time`
# moved to 0.3.36, since 0.3.29 no longer compiles with current Rust). The builds are
# cached in $AGENT_RELAY_BENCH_PEERS (default ~/.cache/agent-relay/bench-peers) and
# skipped when present (bench/e2e.py looks in the same place).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v ssh >/dev/null || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if [ ${#missing[@]} -gt 0 ]; then
  bash "$root/scripts/apt-install.sh" "${missing[@]}"
fi

peers=${AGENT_RELAY_BENCH_PEERS:-$HOME/.cache/agent-relay/bench-peers}
bin="$peers/bin"
mkdir -p "$bin"
FRP=v0.71.0
CHISEL=v1.12.1
RATHOLE=0.5.0

build_go() {
  # One module requiring both (bench/peers/go.mod); frp without its web dashboard assets.
  # The checksum database does not know every module here: go.sum is the pin.
  local stamp="$bin/.go-frp-$FRP-chisel-$CHISEL"
  [ -e "$stamp" ] && [ -x "$bin/frps" ] && [ -x "$bin/frpc" ] && [ -x "$bin/chisel" ] && return
  command -v go >/dev/null || { echo "bench-tools: no go toolchain; frp/chisel not built" >&2; return; }
  echo "== building frp $FRP and chisel $CHISEL (Go module proxy)" >&2
  (cd "$root/bench/peers" && GOSUMDB=off GOFLAGS=-mod=readonly go build -trimpath -tags noweb \
    -o "$bin/" github.com/fatedier/frp/cmd/frps github.com/fatedier/frp/cmd/frpc \
    github.com/jpillora/chisel) >&2
  touch "$stamp"
}

build_rathole() {
  local stamp="$bin/.rathole-$RATHOLE"
  [ -e "$stamp" ] && [ -x "$bin/rathole" ] && return
  command -v cargo >/dev/null || { echo "bench-tools: no cargo; rathole not built" >&2; return; }
  echo "== building rathole $RATHOLE (crates.io; plain TCP transport only)" >&2
  local work="$peers/rathole-src"
  rm -rf "$work"
  mkdir -p "$work"
  # The published crate's source, with our lock file instead of its own.
  # A throwaway package depending on the published crate: cargo fetches its source.
  mkdir -p "$work/fetch/src"
  printf '[package]\nname = "fetch-rathole"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nrathole = { version = "=%s", default-features = false }\n' \
    "$RATHOLE" > "$work/fetch/Cargo.toml"
  echo 'fn main() {}' > "$work/fetch/src/main.rs"
  local crate
  crate=$(cd "$work/fetch" && cargo fetch --quiet >&2 && cargo metadata --format-version 1 --quiet |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="rathole"))')
  local src
  src=$(dirname "$crate")
  rm -rf "$work/rathole"
  cp -r "$src" "$work/rathole"
  cp "$root/bench/peers/rathole-$RATHOLE.Cargo.lock" "$work/rathole/Cargo.lock"
  (cd "$work/rathole" && cargo install --quiet --path . --locked --no-default-features \
    --features server,client --root "$work/install") >&2
  cp "$work/install/bin/rathole" "$bin/rathole"
  rm -rf "$work"
  touch "$stamp"
}

build_go &
go_job=$!
build_rathole
wait "$go_job"

#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, builds the interop
# peers, checks lint and types, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Toolchains installed by rustup and the Go tarball live here on a new machine.
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"

bash scripts/setup.sh
bash tests/interop/build.sh
bash tests/spake2js/build.sh  # @noble/curves for the independent SPAKE2
bash scripts/browser.sh install  # clients/browser: the SDK toolchain (tests/browser)

echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict" >&2
.venv/bin/mypy
echo "== lint-imports (layer rules, docs/architecture.md)" >&2
.venv/bin/lint-imports
echo "== pytest" >&2
AGENT_RELAY_PG_BINDIR=$(bash scripts/postgres.sh); export AGENT_RELAY_PG_BINDIR  # for tests/integration
AGENT_RELAY_CADDY=$(bash scripts/caddy.sh); export AGENT_RELAY_CADDY  # for tests/integration/test_tls.py
bash scripts/bench-tools.sh  # wrk, curl, sshd for tests/integration/test_bench_e2e.py
bash scripts/netns-tools.sh  # ip, iptables for tests/integration/test_webrtc_netns.py
bash scripts/deploy-schemas.sh >/dev/null  # Traefik's CRDs, pinned, for tests/deploy
bash scripts/image.sh >/dev/null  # podman + debootstrap; the image for tests/image (cached)
bash scripts/chromium.sh >/dev/null  # Debian's chromium, for tests/webui (Playwright drives it)
.venv/bin/pytest "$@"

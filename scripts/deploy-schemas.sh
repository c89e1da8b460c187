#!/usr/bin/env bash
# Fetches the third-party schemas the deployment tests validate against, pinned by version
# and checksum, into .cache/deploy-schemas/ (not committed), and prints that directory:
#   traefik/  Traefik's CRDs (IngressRoute, Middleware), from the Go module
#             github.com/traefik/traefik/v3 (go mod download: the Go checksum database
#             verifies it, and so does the module hash pinned below).
# The Kubernetes schemas come with the pinned `kubernetes-validate` package and the
# compose-spec schema with `check-jsonschema` (pyproject.toml's dev dependencies).
# Idempotent: does nothing when the files are there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"

TRAEFIK_MODULE=github.com/traefik/traefik/v3
TRAEFIK_VERSION=v3.7.13
TRAEFIK_SUM="h1:T8wy9KuaFzCkmXCqAzDy7t73pBDR1DHrJe3pqXpNXTw="
CRD_DIR=docs/content/reference/dynamic-configuration
CRDS="traefik.io_ingressroutes.yaml traefik.io_middlewares.yaml"

out="$root/.cache/deploy-schemas"
dest="$out/traefik"
stamp="$dest/.${TRAEFIK_VERSION}"
if [ -f "$stamp" ]; then echo "$out"; exit 0; fi

command -v go >/dev/null || { echo "go is needed to fetch Traefik's CRD schema" >&2; exit 1; }
echo "== fetching Traefik CRDs ($TRAEFIK_MODULE@$TRAEFIK_VERSION)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$TRAEFIK_MODULE@$TRAEFIK_VERSION") > "$work/info.json"
read -r sum dir < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("Sum",""), d.get("Dir",""))' "$work/info.json")
if [ "$sum" != "$TRAEFIK_SUM" ]; then
  echo "checksum mismatch for $TRAEFIK_MODULE@$TRAEFIK_VERSION: got $sum, want $TRAEFIK_SUM" >&2
  exit 1
fi
mkdir -p "$dest"
rm -f "$dest"/.v*
for crd in $CRDS; do
  install -m 0644 "$dir/$CRD_DIR/$crd" "$dest/$crd"
done
touch "$stamp"
echo "$out"

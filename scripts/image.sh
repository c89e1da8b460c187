#!/usr/bin/env bash
# Builds deploy/Dockerfile with podman (Debian's package, no Docker engine) for the image
# tests (tests/image/), and prints the image's name. Installs podman and debootstrap with
# apt-get when they are missing.
#
# No registry is reachable but the package registries, so the base image (a build ARG,
# the official Python slim image by default) is replaced by a stand-in made from Debian's
# packages: `debootstrap --variant=minbase --include=python3,python3-venv bookworm`,
# imported with `podman import`.
#
# Cached on this machine, keyed on the inputs: the base on the debootstrap arguments, the
# image on the base and the hash of everything the build reads (this script, Dockerfile,
# pyproject.toml, README.md, src/, the compiled core's wheel). A second run with the same inputs builds nothing. Runs of several
# worktrees at once are serialised by a lock.
#
#   scripts/image.sh           build when needed, print the image name
#   scripts/image.sh --fresh   drop this machine's cached base and images first
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${AGENT_RELAY_IMAGE_CACHE:-/var/cache/agent-relay-image}

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
INCLUDE=python3,python3-venv
BASE_REPO=localhost/agent-relay-test-base
IMAGE_REPO=localhost/agent-relay-test

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  bash "$root/scripts/apt-install.sh" "${missing[@]}"
fi

mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9

if [ "${1:-}" = --fresh ]; then
  podman images --format '{{.Repository}}:{{.Tag}}' |
    grep -E "^($BASE_REPO|$IMAGE_REPO):" | xargs -r podman rmi -f >/dev/null || true
  rm -f "$cache"/base-*.tar
fi

# ------------------------------------------------------------------ the stand-in base
base_key=$(printf '%s\n' debootstrap --variant=minbase "--include=$INCLUDE" "$SUITE" "$MIRROR" |
  sha256sum | cut -c1-16)
base="$BASE_REPO:$base_key"
if ! podman image exists "$base"; then
  tarball="$cache/base-$base_key.tar"
  if [ ! -s "$tarball" ]; then
    echo "== debootstrap $SUITE (minbase + $INCLUDE)" >&2
    work=$(mktemp -d "$cache/debootstrap.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    debootstrap --variant=minbase "--include=$INCLUDE" "$SUITE" "$work/root" "$MIRROR" \
      > "$work/log" 2>&1 || { tail -n 30 "$work/log" >&2; exit 1; }
    # What a base image leaves out: apt's package lists and caches.
    rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin
    tar -C "$work/root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
    trap - EXIT
  fi
  echo "== podman import $base" >&2
  podman import --change 'CMD ["/bin/bash"]' "$tarball" "$base" >/dev/null
fi

# ------------------------------------------------------------------ the compiled core
# Built here (the base has no Rust toolchain) by scripts/native.sh for the base's Python
# (3.11, bookworm's), into the build context's native/wheels/ that deploy/Dockerfile
# installs from. Without cargo or the dev venv's maturin the image is pure Python.
rm -f "$root"/native/wheels/*.whl
if command -v cargo >/dev/null && [ -x "$root/.venv/bin/maturin" ]; then
  wheel=$(VENV="$root/.venv" bash "$root/scripts/native.sh" "$root/.venv/bin/python")
  case "$wheel" in
    *-cp311-cp311-*) cp "$wheel" "$root/native/wheels/" ;;
    *) echo "== $wheel is not for the base's Python 3.11: the image stays pure Python" >&2 ;;
  esac
else
  echo "== no cargo or no .venv/bin/maturin: the image runs on the pure-Python core" >&2
fi

# ------------------------------------------------------------------ the image
inputs_key=$(cd "$root" && {
  echo "$base"
  sha256sum scripts/image.sh deploy/Dockerfile deploy/Dockerfile.dockerignore pyproject.toml \
    README.md
  find src native/wheels -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
    sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-16)
image="$IMAGE_REPO:$inputs_key"
ca_bundle=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
if ! podman image exists "$image"; then
  echo "== podman build $image (base $base)" >&2
  started=$(date +%s)
  # The machine's trust store goes to the build's pip as a build secret (see docs/deploy.md:
  # a TLS-inspecting proxy in front of PyPI); the proxy and index settings of this machine
  # as build arguments.
  build_args=(--build-arg "BASE=$base" --label "agent-relay.test.base=$base" --secret "id=ca-certificates,src=$ca_bundle")
  for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST HTTPS_PROXY HTTP_PROXY NO_PROXY \
      https_proxy http_proxy no_proxy; do
    if [ -n "${!name:-}" ]; then build_args+=(--build-arg "$name=${!name}"); fi
  done
  # Docker's image format: OCI's has no HEALTHCHECK.
  podman build --isolation chroot --format docker --layers=false --pull=never \
    "${build_args[@]}" \
    -f "$root/deploy/Dockerfile" --ignorefile "$root/deploy/Dockerfile.dockerignore" \
    -t "$image" "$root" >&2
  echo "== built $image in $(($(date +%s) - started)) s" >&2
  # Test images of this machine older than two days go (other worktrees may be using the
  # newer ones); the base stays.
  podman images --filter "reference=$IMAGE_REPO" --filter until=48h --format '{{.ID}}' |
    xargs -r podman rmi >/dev/null 2>&1 || true
fi
echo "$image"

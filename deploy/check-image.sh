#!/usr/bin/env bash
# Builds the image and smoke-tests it where a Docker engine exists (the test suite checks
# the Dockerfile statically only). Usage: deploy/check-image.sh [TAG]
#   - both entry points run; the user is not root; the root filesystem can be read-only
#   - a stand-alone relay starts, answers /ready, and Docker's HEALTHCHECK turns healthy
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-agent-relay:check}
name=agent-relay-check-$$

fail() { echo "check-image: FAIL: $*" >&2; exit 1; }
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT

command -v docker >/dev/null || fail "docker is not installed"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info failed)"

echo "== build $tag" >&2
docker build -f "$root/deploy/Dockerfile" -t "$tag" "$root"

echo "== entry points" >&2
docker run --rm "$tag" agent-relay --version
docker run --rm "$tag" relay-server --help >/dev/null
docker run --rm "$tag" /usr/local/bin/relay-server --help >/dev/null
uid=$(docker run --rm "$tag" id -u)
[ "$uid" != 0 ] || fail "the image runs as root"
echo "runs as uid $uid"

echo "== relay-server refuses to start without its settings" >&2
if docker run --rm "$tag" relay-server >/dev/null 2>&1; then
  fail "relay-server started without SERVER_DATABASE_URL"
fi

echo "== stand-alone relay, read-only root filesystem" >&2
docker run -d --name "$name" --read-only --tmpfs /tmp --tmpfs /data:uid="$uid" \
  -p 127.0.0.1::8082 "$tag" >/dev/null
port=$(docker port "$name" 8082/tcp | head -n1 | sed 's/.*://')
for _ in $(seq 1 60); do
  if body=$(python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$port/ready', timeout=2).read().decode())" 2>/dev/null); then
    break
  fi
  sleep 0.5
done
[ -n "${body:-}" ] || { docker logs "$name" >&2; fail "/ready never answered"; }
echo "/ready: $body"
case "$body" in *'"database":"ok"'*) ;; *) fail "/ready did not report the database ok";; esac

echo "== HEALTHCHECK" >&2
for _ in $(seq 1 60); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$name")
  [ "$status" = healthy ] && break
  [ "$status" = unhealthy ] && { docker logs "$name" >&2; fail "container is unhealthy"; }
  sleep 1
done
[ "$status" = healthy ] || fail "HEALTHCHECK never passed (status: $status)"

docker exec "$name" agent-relay users add smoke >/dev/null
docker exec "$name" agent-relay tokens issue smoke --ttl 1h >/dev/null
echo "check-image: OK ($tag)"

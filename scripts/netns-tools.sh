#!/usr/bin/env bash
# ip (iproute2) and iptables, for tests/integration/test_webrtc_netns.py: the WebRTC
# fallback test puts the host in a network namespace with UDP dropped.
set -euo pipefail
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
fi

"""The WebRTC fallback from the browser: the host (connector with its aiortc answerer, and
its local server) in a network namespace with UDP dropped inside it
(tests/integration/test_webrtc_netns.py makes it), Chromium outside. The upgrade fails
within its bound and every call still succeeds through the relay. Needs root, ip and
iptables (scripts/netns-tools.sh); without them the test fails, it does not skip."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent_relay.trust import TrustHost
from tests.integration.test_webrtc_netns import host_in, online_host, udp_less_namespace
from tests.support.relay import running_relay

from .test_remote_ui import CLIENTS, SCREENS, chromium
from .test_webrtc_chromium import drive

pytestmark = pytest.mark.timeout(180)


async def test_udp_dropped_the_browser_stays_on_the_relay(tmp_path: Path, sqlite_url: str) -> None:
    browser = chromium()
    with udp_less_namespace() as (namespace, ours, _):
        async with (
            running_relay(sqlite_url, listen_host=ours) as relay,
            host_in(namespace, relay, tmp_path),
        ):
            host_id = await online_host(relay, tmp_path / "host.log")
            code = TrustHost.open(tmp_path / "host").issue_code(time.time()).code
            summary = await drive(
                {
                    "mode": "netns",
                    "clientsDir": str(CLIENTS),
                    "chromium": browser,
                    "outDir": str(SCREENS),
                    "relay": relay.url,
                    "token": relay.token,
                    "hostId": host_id,
                    "code": code,
                }
            )
    netns = summary["netns"]
    assert netns["upgraded"] is False, netns
    assert netns["tookMs"] < 10_000, netns
    assert all(call[0] == "relayed" for call in netns["calls"]), netns

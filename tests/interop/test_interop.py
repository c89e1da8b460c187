"""agent_relay.mux against Go (hashicorp/yamux), Rust (tokio-yamux) and JS (yamux-js),
both yamux roles each way, over TCP and over WebSocket."""

from __future__ import annotations

import pytest

from tests.interop.driver import PEERS, SCENARIOS, run_scenario

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", autouse=True)
def peers_are_built() -> None:
    missing = [str(path) for path in PEERS.values() if not path.exists()]
    assert not missing, f"interop peers not built (run tests/interop/build.sh): {missing}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("peer_role", ["client", "server"])
@pytest.mark.parametrize("peer", list(PEERS))
async def test_interop(peer: str, peer_role: str, transport: str, scenario: str) -> None:
    await run_scenario(peer, peer_role, transport, scenario)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("peer_role", ["client", "server"])
async def test_unrepaired_yamux_js(peer_role: str, transport: str) -> None:
    """yamux-js exactly as published: pings both ways (what needs no FIN or RST)."""
    await run_scenario("js", peer_role, transport, "ping", patched=False)

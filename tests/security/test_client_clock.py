"""Issue 11 item 10: an unsigned 401 (the relay can forge one) may move the client's
estimate of the host clock by no more than the host's window, and never persistently."""

from __future__ import annotations

import time
from pathlib import Path

from agent_relay.client.client import RelayClient
from agent_relay.client.clock import HostClock
from agent_relay.client.keystore import KeyStore

from ..unit.test_client_core import pairing


def test_an_unsigned_correction_beyond_the_window_is_refused() -> None:
    clock = HostClock(lambda: 1000.0)
    assert not clock.observe("1089", verified=False)  # the attack: +89 s
    assert clock.now() == 1000
    assert clock.observe("1025", verified=False)
    assert clock.now() == 1025


async def test_an_unsigned_correction_is_never_saved(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    saved = pairing()
    store.save(saved)
    async with RelayClient(saved, store=store) as client:
        client._observe_host_time(str(int(time.time()) + 20), verified=False)
        assert abs(client.clock.offset - 20) < 2  # used for this run ...
    assert store.load(saved.relay_url, saved.host_id).clock_offset == 0.0  # ... not kept

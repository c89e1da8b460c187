"""Issue 15 items 5 and 7 at the connect path: a relay busy with handshakes refuses more
with 503 and Retry-After before any database work (the connector reads it), and a
connector whose relay stopped answering gives it up within seconds of the keepalive
failing (a short close timeout instead of websockets' 10 s)."""

from __future__ import annotations

import time

import pytest

from agent_relay.host.dial import DialError, dial
from agent_relay.mux import MuxConfig
from tests.support.connector import eventually, running_connector
from tests.support.localserver import LocalServer
from tests.support.relay import running_relay


async def test_a_connect_beyond_the_handshake_cap_gets_503_with_retry_after(
    sqlite_url: str,
) -> None:
    async with running_relay(sqlite_url, max_concurrent_handshakes=0) as relay:
        url = relay.url.replace("http://", "ws://") + "/v1/relay/connect?machine_id=m1"
        with pytest.raises(DialError) as refused:
            await dial(url, relay.token, open_timeout=10)
        assert refused.value.status == 503
        assert refused.value.retry_after == 1
        assert not refused.value.refused  # not a credentials problem: no slow backoff
        hosts = await relay.store.list_hosts_for_user(relay.user_id)
        assert hosts == []  # refused before the database was touched


async def test_the_connector_gives_up_a_relay_that_stopped_answering_quickly(
    sqlite_url: str, local: LocalServer
) -> None:
    mux = MuxConfig(keepalive_interval=0.2, keepalive_timeout=0.5)
    async with (
        running_relay(sqlite_url) as relay,
        running_connector(relay, local.url, mux=mux) as connector,
    ):
        await relay.host_id()
        [tunnel] = relay.service.app.registry.tunnels()
        # The relay reads nothing more: no pong, and no answer to the close either.
        tunnel.session._transport._writer.transport.pause_reading()  # type: ignore[attr-defined]
        frozen = time.monotonic()
        await eventually(lambda: not connector.state.connected, timeout=15)
        took = time.monotonic() - frozen
        # keepalive (0.2 + 0.5 s) and the 2 s close timeout (about 3 s in all), not
        # websockets' 10 s close timeout (10.7 s or more): the bound tells the two apart
        # with room for a loaded machine.
        assert took < 9.5, f"the connector noticed the dead relay after {took:.1f} s"
        tunnel.session._transport._writer.transport.resume_reading()  # type: ignore[attr-defined]

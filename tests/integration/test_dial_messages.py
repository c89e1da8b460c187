"""The connector's dial pointed at something that is not a relay says so."""

from __future__ import annotations

import pytest

from agent_relay.host.dial import DialError, dial
from tests.support.localserver import local_server
from tests.support.relay import Relay


async def test_a_web_server_that_is_not_a_relay() -> None:
    async with local_server() as other:
        url = other.url.replace("http://", "ws://") + "/v1/relay/connect"
        with pytest.raises(DialError) as refused:
            await dial(url, "a.b.c", open_timeout=10)
    assert refused.value.status == 404
    assert refused.value.message.endswith(
        "; not an agent-relay relay's answer: give --relay the relay's base URL, and keep "
        "login proxies off /v1/relay"
    )


async def test_wss_to_a_plain_http_port(relay: Relay) -> None:
    url = relay.url.replace("http://", "wss://") + "/v1/relay/connect"
    with pytest.raises(DialError) as refused:
        await dial(url, relay.token, open_timeout=10)
    assert refused.value.message == "that port speaks plain HTTP, not TLS: use http:// in --relay"

"""The one relay-URL parser the connector, client, doctor and host-id lookup share."""

from __future__ import annotations

import pytest

from agent_relay.baseurl import RelayUrl


def test_one_parse_serves_every_use() -> None:
    url = RelayUrl.parse(" HTTPS://Relay.Example:8443/base/ ")
    assert url.base == "https://relay.example:8443/base"
    assert url.ws("/v1/relay/connect") == "wss://relay.example:8443/base/v1/relay/connect"
    assert url.http("/v1/hosts") == "https://relay.example:8443/base/v1/hosts"
    assert url.origin == "https://relay.example:8443"
    assert RelayUrl.parse("ws://[::1]:80").origin == "http://[::1]"


@pytest.mark.parametrize(
    "text",
    ["ftp://x", "https://", "https://x/?q=1", "https://x/#f", "https://u:p@x", "http://x:99999"],
)
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match="relay URL"):
        RelayUrl.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "https://relay.example/base/v1",
        "https://relay.example/base/v1/relay/",
        "wss://relay.example/base/v1/relay/connect",
    ],
)
def test_an_api_path_after_the_base_is_dropped(text: str) -> None:
    assert RelayUrl.parse(text).base == "https://relay.example/base"

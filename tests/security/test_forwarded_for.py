"""Issue 11 item 7 (the relay's part): the host learns the real client address; a client
cannot choose its own (which let one caller dodge, or lock everyone out of, the host's
per-address pairing rate limit)."""

from __future__ import annotations

import ipaddress

from agent_relay.relay.forwarding import client_address, parse_trusted_proxies

from ..integration.test_relay import running_relay


async def test_forged_forwarded_headers_are_replaced_by_the_real_peer(sqlite_url: str) -> None:
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        base = await relay.path()
        response = await relay.client.get(
            f"{base}/headers",
            headers={
                "x-forwarded-for": "203.0.113.9",
                "forwarded": "for=203.0.113.9",
                "x-real-ip": "203.0.113.9",
            },
        )
        seen = response.json()["headers"]
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["forwarded"] == "for=127.0.0.1"
        assert "x-real-ip" not in seen
        await host.close()


async def test_behind_a_trusted_proxy_its_forwarded_for_is_believed(sqlite_url: str) -> None:
    trusted = parse_trusted_proxies("127.0.0.0/8")
    async with running_relay(sqlite_url, trusted_proxies=trusted) as relay:
        host = await relay.host()
        base = await relay.path()
        response = await relay.client.get(
            f"{base}/headers", headers={"x-forwarded-for": "198.51.100.7, 127.0.0.2"}
        )
        assert response.json()["headers"]["x-forwarded-for"] == "198.51.100.7"
        await host.close()


def test_client_address_from_an_untrusted_peer_ignores_its_claims() -> None:
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    claims = [(b"x-forwarded-for", b"1.2.3.4")]
    assert client_address("192.0.2.1", claims, trusted) == "192.0.2.1"
    assert client_address("10.1.1.1", claims, trusted) == "1.2.3.4"
    assert client_address("10.1.1.1", [(b"x-forwarded-for", b"junk")], trusted) == "10.1.1.1"

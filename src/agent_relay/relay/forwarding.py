"""Who the client is, told to the host (issue 11 item 7): ``X-Forwarded-For`` and
``Forwarded`` are set from the real peer address, never taken from the client, so the
host's per-address pairing rate limit counts real clients.

Behind a reverse proxy (Caddy, Traefik) the peer is the proxy; list its addresses in
``AGENT_RELAY_TRUSTED_PROXIES`` (comma-separated CIDRs) and the relay believes what such a
peer says in ``X-Forwarded-For``: the client is the rightmost address there that is not
itself a trusted proxy. Both headers then carry that one address.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TRUSTED_PROXIES_ENV = "AGENT_RELAY_TRUSTED_PROXIES"
# Set on every request carried between replicas (link.py): the receiving replica answers
# it itself and never forwards it again (one hop at most).
FORWARDED_HEADER = b"x-agent-relay-forwarded"
_CLIENT_ADDRESS_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


class TrustedProxiesError(ValueError):
    """A trusted-proxy entry that is not an IP network; the message names it."""


def parse_trusted_proxies(value: str | None) -> tuple[Network, ...]:
    networks: list[Network] = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise TrustedProxiesError(
                f"{TRUSTED_PROXIES_ENV}: {item!r} is not an IP address or CIDR network"
            ) from None
    return tuple(networks)


def trusted_proxies_from_environment(
    environ: Mapping[str, str] = os.environ,
) -> tuple[Network, ...]:
    return parse_trusted_proxies(environ.get(TRUSTED_PROXIES_ENV))


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip().strip('"')
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _trusted(address: object, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def client_address(
    peer: str, headers: Sequence[tuple[bytes, bytes]], trusted: Sequence[Network]
) -> str:
    """The real client: the peer, or behind trusted proxies the rightmost address in
    their ``X-Forwarded-For`` that is not one of them."""
    if not trusted:
        return peer  # no proxy is believed (the default): nothing to parse
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, trusted):
        return peer
    chain = [
        part
        for name, value in headers
        if name == b"x-forwarded-for"
        for part in value.decode("latin-1").split(",")
    ]
    for part in reversed(chain):
        address = _address(part)
        if address is None:
            return peer  # a garbled chain: believe nothing in it
        if not _trusted(address, trusted):
            return str(address)
    return peer


def with_client_address(
    headers: Sequence[tuple[bytes, bytes]], peer: str, trusted: Sequence[Network]
) -> list[tuple[bytes, bytes]]:
    """The request headers for the host: the client's own address headers removed, ours
    added."""
    client = client_address(peer, headers, trusted)
    kept = [(k, v) for k, v in headers if k not in _CLIENT_ADDRESS_HEADERS]
    node = f'"[{client}]"' if ":" in client else client
    kept.append((b"x-forwarded-for", client.encode("latin-1")))
    kept.append((b"forwarded", f"for={node}".encode("latin-1")))
    return kept

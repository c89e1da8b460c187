"""Socket options for peers that leave Nagle's algorithm on.

A peer with Nagle on (the reference host and relay) holds its second small write until
the first is acknowledged; if our kernel delays that ACK (~40 ms on Linux) and we have
nothing to send back, every exchange stalls by that much. So: ``TCP_NODELAY`` on every
TCP socket we own (asyncio sets it too; this makes it explicit and covers the rest), and
``TCP_QUICKACK`` re-armed after each read of a control channel (Linux clears it by
itself), which sends a pending ACK at once. Both are no-ops where unsupported.
"""

from __future__ import annotations

import socket
from typing import Any

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def tcp_socket(transport: Any) -> Any:
    """The TCP socket under an asyncio transport (also beneath TLS), or None."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock


def set_nodelay(sock: Any) -> None:
    if sock is not None:
        try:  # noqa: SIM105 - try/except is cheaper than contextlib.suppress
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def quick_ack(sock: Any) -> None:
    """Acknowledge what was received without waiting for the delayed-ACK timer."""
    if sock is not None and _QUICKACK is not None:
        try:  # noqa: SIM105 - once per read: try/except is cheaper than suppress()
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass

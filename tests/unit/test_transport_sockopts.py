"""Socket options for peers with Nagle on: TCP_NODELAY set, TCP_QUICKACK re-armed, both
harmless where they do not apply (Unix sockets, closed sockets)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from agent_relay.transport.sockopts import quick_ack, set_nodelay, tcp_socket


async def test_tcp_socket_options_are_set() -> None:
    accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

    async def on_client(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(writer)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.open_connection("127.0.0.1", port)
    served = await accepted
    try:
        for writer in (client, served):
            sock = tcp_socket(writer.transport)
            assert sock is not None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            set_nodelay(sock)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            if hasattr(socket, "TCP_QUICKACK"):
                quick_ack(sock)
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
    finally:
        for writer in (client, served):
            writer.close()
        server.close()
        await server.wait_closed()
    # A closed socket: nothing raised.
    quick_ack(tcp_socket(client.transport))


async def test_unix_sockets_and_none_are_left_alone(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    server = await asyncio.start_unix_server(lambda r, w: w.close(), path)
    _, writer = await asyncio.open_unix_connection(path)
    try:
        assert tcp_socket(writer.transport) is None
        assert tcp_socket(None) is None
        set_nodelay(None)
        quick_ack(None)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()

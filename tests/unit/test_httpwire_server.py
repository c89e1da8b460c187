"""httpwire.server: a graceful stop lets every response go out whole."""

from __future__ import annotations

import asyncio
import socket

from agent_relay.httpwire.server import Exchange, HttpServer, ServerLimits

BODY = bytes(range(256)) * (512 * 1024 // 256)


async def test_a_stop_waits_until_the_tail_of_a_response_has_left_the_buffer() -> None:
    transports: list[asyncio.WriteTransport] = []
    answering = asyncio.Event()

    async def handler(ex: Exchange) -> None:
        transport = ex.channel.writer.transport
        # Small kernel buffers and a write that does not wait: the handler is done while
        # most of the body still sits in the transport's own buffer, as the last piece
        # of a long download does (below the high-water mark, so nobody waits for it).
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport.set_write_buffer_limits(high=2 * len(BODY))
        transports.append(transport)
        answering.set()
        await ex.respond(200, BODY, headers=[(b"connection", b"close")])

    async def on_error(ex: Exchange, exc: BaseException) -> None:
        raise exc

    server = HttpServer(handler, on_error, ServerLimits())
    host, port = await server.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    # A raw socket, not a stream reader (which would read ahead into its own buffer).
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await answering.wait()

    async def read_after_a_pause() -> bytes:
        await asyncio.sleep(1.5)  # a slow reader: longer than a fixed grace period
        received = bytearray()
        while data := await loop.sock_recv(sock, 65536):
            received += data
        return bytes(received)

    reading = asyncio.create_task(read_after_a_pause())
    await server.stop_accepting()
    await server.wait_connections(10)
    # The process exits next, dropping whatever a transport still holds: nothing may.
    assert transports[0].get_write_buffer_size() == 0
    received = await reading
    sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == len(BODY)
    assert body == BODY

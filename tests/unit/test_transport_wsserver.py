"""The relay's server end of a WebSocket (transport/wsserver.py): what it keeps of the
messages it read."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.uri import parse_uri

from agent_relay.transport.wsserver import WebSocketServerStream, open_protocol


@pytest.fixture
async def pair() -> AsyncIterator[tuple[WebSocketServerStream, asyncio.StreamWriter]]:
    """A server stream on a real socket, and the raw client end of that socket."""
    accepted: asyncio.Future[WebSocketServerStream] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(WebSocketServerStream(open_protocol(), reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.open_connection("127.0.0.1", port)
    stream = await accepted
    try:
        yield stream, client
    finally:
        client.close()
        await stream.close()
        server.close()
        await server.wait_closed()


def client_frames(*messages: bytes) -> bytes:
    """``messages`` as a client sends them: binary frames, masked."""
    protocol = ClientProtocol(parse_uri("ws://relay/v1/relay/connect"), state=State.OPEN)
    for message in messages:
        protocol.send_binary(message)
    return b"".join(protocol.data_to_send())


async def test_a_read_message_is_not_kept_by_the_parser(
    pair: tuple[WebSocketServerStream, asyncio.StreamWriter],
) -> None:
    """The library's parser holds its last frame until the next one is complete (on a
    control channel, the next keepalive): the stream must not leave the payload there,
    or every host that last sent a large message keeps it in the relay's memory."""
    stream, client = pair
    client.write(client_frames(b"x" * (512 * 1024)))
    await client.drain()
    received = bytearray()
    while len(received) < 512 * 1024:
        received += await stream.read()
    assert received == b"x" * (512 * 1024)
    # Nothing of the stream's refers to a payload it handed out: no frame keeps one.
    gc.collect()
    kept = [o for o in gc.get_objects() if isinstance(o, Frame) and len(o.data) >= 1024]
    assert kept == []


async def test_messages_go_on_after_a_payload_was_taken(
    pair: tuple[WebSocketServerStream, asyncio.StreamWriter],
) -> None:
    stream, client = pair
    client.write(client_frames(b"first", b"", b"second"))
    await client.drain()
    received = bytearray()
    while len(received) < 11:
        received += await stream.read()
    assert received == b"firstsecond"

"""A WebSocket as a byte stream: message boundaries do not matter, text counts as bytes,
WebSocket pings stay out of the stream, a close is the end of the stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from agent_relay.mux import MuxSession, SessionClosedError
from agent_relay.mux.frame import Flag, FrameType, decode_header, encode_header
from agent_relay.transport import WebSocketByteStream


@contextlib.asynccontextmanager
async def session_behind_websocket() -> AsyncIterator[tuple[MuxSession, ClientConnection]]:
    """A server session on a WebSocket, and the raw client end of that WebSocket."""
    loop = asyncio.get_running_loop()
    sessions: asyncio.Future[MuxSession] = loop.create_future()

    async def handler(websocket: ServerConnection) -> None:
        session = MuxSession(WebSocketByteStream(websocket), client=False)
        sessions.set_result(session)
        await session.wait_closed()

    async with ws_serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/mux") as websocket:
            session = await sessions
            try:
                yield session, websocket
            finally:
                await session.close()


def syn_with_data(stream_id: int, payload: bytes) -> bytes:
    return encode_header(FrameType.DATA, Flag.SYN, stream_id, len(payload)) + payload


async def test_frames_split_and_joined_across_messages() -> None:
    async with session_behind_websocket() as (session, websocket):
        wire = syn_with_data(1, b"first stream") + syn_with_data(3, b"second")
        # One frame split over three messages, and two frames' ends sharing one message.
        for cut in (wire[:5], wire[5:13], wire[13:30], wire[30:]):
            await websocket.send(cut)
        first = await session.accept_stream()
        second = await session.accept_stream()
        assert await first.readexactly(12) == b"first stream"
        assert await second.readexactly(6) == b"second"


async def test_text_and_empty_messages() -> None:
    async with session_behind_websocket() as (session, websocket):
        wire = syn_with_data(1, b"sent as text")
        await websocket.send(b"")  # not the end of the stream
        await websocket.send(wire.decode("ascii"))  # a text message: still bytes of the stream
        stream = await session.accept_stream()
        assert await stream.readexactly(12) == b"sent as text"


async def test_websocket_pings_do_not_disturb_the_stream() -> None:
    async with session_behind_websocket() as (session, websocket):
        await websocket.send(syn_with_data(1, b"before"))
        pong = await websocket.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        await websocket.send(encode_header(FrameType.DATA, 0, 1, 5) + b"after")
        stream = await session.accept_stream()
        assert await stream.readexactly(11) == b"beforeafter"


async def test_writes_are_binary_messages() -> None:
    async with session_behind_websocket() as (session, websocket):
        pinging = asyncio.create_task(session.ping())
        message = await websocket.recv()
        assert isinstance(message, bytes)
        header = decode_header(message)
        assert header.type is FrameType.PING
        await websocket.send(encode_header(FrameType.PING, Flag.ACK, 0, header.length))
        assert await pinging > 0


async def test_close_message_ends_the_session() -> None:
    async with session_behind_websocket() as (session, websocket):
        await websocket.send(syn_with_data(1, b"x"))
        stream = await session.accept_stream()
        await websocket.close()
        await asyncio.wait_for(session.wait_closed(), 5)
        assert session.closed
        assert await stream.read() == b"x"  # what arrived can still be read
        with pytest.raises(SessionClosedError):
            await stream.read()  # then the truncation is an error, not an end of stream

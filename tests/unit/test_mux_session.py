"""The asyncio yamux session over real loopback TCP sockets and WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import AsyncIterator

import pytest

from agent_relay.mux import (
    GoAwayError,
    MuxConfig,
    MuxSession,
    MuxStream,
    SessionClosedError,
    StreamResetError,
)
from agent_relay.mux.frame import Flag, FrameType, GoAwayCode, decode_header, encode_header
from agent_relay.transport import SocketByteStream
from tests.conftest import PairFactory

MIB = 1024 * 1024


async def echo_server(session: MuxSession) -> None:
    async def echo(stream: MuxStream) -> None:
        with contextlib.suppress(StreamResetError):
            while data := await stream.read():
                await stream.write(data)
            await stream.close()

    async with asyncio.TaskGroup() as tg:
        while True:
            try:
                stream = await session.accept_stream()
            except SessionClosedError:
                return
            tg.create_task(echo(stream))


@contextlib.asynccontextmanager
async def serving(session: MuxSession) -> AsyncIterator[None]:
    task = asyncio.create_task(echo_server(session))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def echo_round_trip(stream: MuxStream, payload: bytes) -> bytes:
    async def send() -> None:
        view = memoryview(payload)
        for start in range(0, len(payload), 50_000):
            await stream.write(view[start : start + 50_000])
        await stream.close()

    sender = asyncio.create_task(send())
    got = bytearray()
    while data := await stream.read():
        got += data
    await sender
    return bytes(got)


async def test_echo_with_half_close(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server), serving(server):
        stream = await client.open_stream()
        payload = random.randbytes(3 * MIB + 17)
        assert await echo_round_trip(stream, payload) == payload
        assert stream.at_eof


async def test_many_concurrent_streams(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server), serving(server):

        async def one(i: int) -> None:
            stream = await client.open_stream()
            payload = random.Random(i).randbytes(100_000 + i)
            assert await echo_round_trip(stream, payload) == payload

        async with asyncio.TaskGroup() as tg:
            for i in range(100):
                tg.create_task(one(i))
        assert client.num_streams == 0


async def test_server_opens_streams_too(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server), serving(client):
        stream = await server.open_stream()
        assert stream.stream_id % 2 == 0
        assert await echo_round_trip(stream, b"from the server") == b"from the server"


async def test_reset_reaches_the_peer_and_the_session_goes_on(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server):
        stream = await client.open_stream()
        await stream.write(b"x")
        accepted = await server.accept_stream()
        assert await accepted.read() == b"x"
        stream.reset()
        with pytest.raises(StreamResetError):
            await accepted.read()
        with pytest.raises(StreamResetError):
            await stream.write(b"more")
        again = await client.open_stream()
        await again.write(b"y")
        assert await (await server.accept_stream()).read() == b"y"


async def test_on_failure_tells_of_a_peer_reset_once_and_never_of_our_own(
    make_pair: PairFactory,
) -> None:
    async with make_pair() as (client, server):
        stream = await client.open_stream()
        await stream.write(b"x")
        accepted = await server.accept_stream()
        failures: list[Exception] = []
        told = asyncio.Event()

        def tell(error: Exception) -> None:
            failures.append(error)
            told.set()

        accepted.on_failure(tell)
        stream.reset()
        async with asyncio.timeout(5):
            await told.wait()
        assert [type(f) for f in failures] == [StreamResetError]
        late: list[Exception] = []
        accepted.on_failure(late.append)  # registered after the fact: told at once
        assert [type(f) for f in late] == [StreamResetError]
        ours = await client.open_stream()
        ours.on_failure(failures.append)
        ours.reset()
        await client.close()
        assert len(failures) == 1


async def test_slow_reader_bounds_memory_and_blocks_the_writer(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server):
        stream = await client.open_stream()
        payload = random.randbytes(8 * MIB)
        writer = asyncio.create_task(stream.write(payload))
        accepted = await server.accept_stream()
        await asyncio.sleep(0.3)
        assert not writer.done()
        buffered = sum(len(c) for c in accepted._chunks)
        assert buffered <= server.config.max_stream_window
        assert client._conn.pending_output <= client.config.write_high_water
        got = await accepted.readexactly(len(payload))
        await writer
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


async def test_concurrent_writers_on_one_stream_do_not_interleave_writes(
    make_pair: PairFactory,
) -> None:
    async with make_pair() as (client, server):
        stream = await client.open_stream()
        blocks = [bytes([i]) * 300_000 for i in range(8)]

        async def write_all() -> None:
            await asyncio.gather(*(stream.write(block) for block in blocks))
            await stream.close()

        writing = asyncio.create_task(write_all())
        accepted = await server.accept_stream()
        got = await accepted.read_all(limit=10 * MIB)
        await writing
        runs = [got[i : i + 300_000] for i in range(0, len(got), 300_000)]
        assert sorted(runs) == sorted(blocks)


async def test_ping_round_trip(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server):
        assert 0 < await client.ping() < 5
        assert 0 < await server.ping() < 5


async def test_graceful_drain_lets_open_streams_finish(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server):
        stream = await client.open_stream()
        await stream.write(b"request")
        accepted = await server.accept_stream()
        closing = asyncio.create_task(server.close(drain_timeout=10))
        await asyncio.sleep(0.1)
        assert client.remote_go_away == GoAwayCode.NORMAL
        with pytest.raises(GoAwayError):
            await client.open_stream()
        assert await accepted.read() == b"request"
        await accepted.write(b"response")
        await accepted.close()
        assert await stream.read() == b"response"
        await stream.close()
        await asyncio.wait_for(closing, 5)
        with pytest.raises(SessionClosedError):
            await client.accept_stream()


async def test_drain_deadline_cuts_stragglers(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server):
        stream = await client.open_stream()
        await stream.write(b"never answered")
        await server.accept_stream()
        await asyncio.wait_for(server.close(drain_timeout=0.2), 5)
        with pytest.raises(SessionClosedError):
            await stream.read()


async def test_closing_fails_everything_pending(make_pair: PairFactory) -> None:
    async with make_pair() as (client, server):
        stream = await client.open_stream()
        reader = asyncio.create_task(stream.read())
        acceptor = asyncio.create_task(client.accept_stream())
        await asyncio.sleep(0.05)
        await server.close()
        with pytest.raises(SessionClosedError):
            await reader
        with pytest.raises(SessionClosedError):
            await acceptor
        with pytest.raises(SessionClosedError):
            await client.open_stream()
        await asyncio.wait_for(client.wait_closed(), 5)


async def test_writes_are_coalesced(make_pair: PairFactory) -> None:
    async with make_pair() as (client, _server):
        transport = client._transport
        writes = 0
        real_write = transport.write

        async def counting_write(data: bytes) -> None:
            nonlocal writes
            writes += 1
            await real_write(data)

        transport.write = counting_write
        streams = [await client.open_stream() for _ in range(50)]
        await asyncio.sleep(0.05)
        writes = 0
        await asyncio.gather(*(s.write(b"small message") for s in streams))
        await asyncio.sleep(0.05)
        assert 1 <= writes <= 3


# ------------------------------------------------------------- a raw peer on a socket


@contextlib.asynccontextmanager
async def raw_peer(
    config: MuxConfig,
) -> AsyncIterator[tuple[MuxSession, asyncio.StreamReader, asyncio.StreamWriter]]:
    """A client session whose peer is a bare socket the test writes frames to by hand."""
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
        asyncio.get_running_loop().create_future()
    )

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result((reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = MuxSession(
        SocketByteStream(*await asyncio.open_connection("127.0.0.1", port)),
        client=True,
        config=config,
    )
    reader, writer = await accepted
    try:
        yield session, reader, writer
    finally:
        await session.close()
        writer.close()
        server.close()


async def read_frames_until(reader: asyncio.StreamReader, kind: FrameType) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    while True:
        header = decode_header(await reader.readexactly(12))
        seen.append((header.type, header.flags, header.stream_id, header.length))
        if header.type is FrameType.DATA:
            await reader.readexactly(header.length)
        if header.type is kind:
            return seen


async def test_unanswered_keepalive_closes_the_session() -> None:
    config = MuxConfig(keepalive_interval=0.1, keepalive_timeout=0.2)
    async with raw_peer(config) as (session, reader, _writer):
        stream = await session.open_stream()
        reading = asyncio.create_task(stream.read())
        seen = await read_frames_until(reader, FrameType.PING)
        assert seen[-1][:2] == (FrameType.PING, Flag.SYN)
        await asyncio.wait_for(session.wait_closed(), 5)
        assert session.closed
        assert "keepalive" in session.close_reason
        with pytest.raises(SessionClosedError):
            await reading


async def test_answered_keepalive_keeps_the_session() -> None:
    config = MuxConfig(keepalive_interval=0.05, keepalive_timeout=0.5)
    async with raw_peer(config) as (session, reader, writer):
        for _ in range(5):
            seen = await read_frames_until(reader, FrameType.PING)
            writer.write(encode_header(FrameType.PING, Flag.ACK, 0, seen[-1][3]))
        assert not session.closed


async def test_unacknowledged_open_times_out_with_reset() -> None:
    async with raw_peer(MuxConfig(stream_open_timeout=0.2)) as (session, reader, _writer):
        stream = await session.open_stream()
        with pytest.raises(StreamResetError, match="timed out"):
            await stream.wait_acknowledged()
        seen = await read_frames_until(reader, FrameType.WINDOW_UPDATE)
        assert seen[0][:3] == (FrameType.WINDOW_UPDATE, Flag.SYN, 1)
        rst = await read_frames_until(reader, FrameType.WINDOW_UPDATE)
        assert rst[-1][:3] == (FrameType.WINDOW_UPDATE, Flag.RST, 1)


async def test_garbage_from_the_peer_gets_a_protocol_error_go_away() -> None:
    async with raw_peer(MuxConfig()) as (session, reader, writer):
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        seen = await read_frames_until(reader, FrameType.GO_AWAY)
        assert seen[-1] == (FrameType.GO_AWAY, 0, 0, GoAwayCode.PROTOCOL_ERROR)
        assert await reader.read() == b""  # then the connection is closed
        await asyncio.wait_for(session.wait_closed(), 5)
        assert "version" in session.close_reason


class _RecordingTransport(SocketByteStream):
    """A socket byte stream that keeps what each transport write carried."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(data)
        await super().write(data)


async def test_ack_and_fin_travel_with_other_frames_or_leave_soon_alone() -> None:
    """The ACK of an accepted stream goes out with the answer written at once, in one
    transport write; an ACK with nothing to travel with leaves by itself soon after."""
    connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
        asyncio.get_running_loop().create_future()
    )
    server = await asyncio.start_server(lambda r, w: connected.set_result((r, w)), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = _RecordingTransport(*await asyncio.open_connection("127.0.0.1", port))
    session = MuxSession(transport, client=True, config=MuxConfig(keepalive_interval=None))
    reader, writer = await connected
    try:
        for stream_id in (2, 4):
            writer.write(encode_header(FrameType.DATA, Flag.SYN, stream_id, 2) + b"hi")
        first = await session.accept_stream()
        assert await first.read() == b"hi"
        await asyncio.sleep(0)  # the answer takes a moment (a round trip upstream)
        await first.write(b"answer")
        await first.close()
        seen = await read_frames_until(reader, FrameType.DATA)
        assert seen == [(FrameType.WINDOW_UPDATE, Flag.ACK, 2, seen[0][3]), (0, 0, 2, 6)]
        assert len(transport.writes) == 1  # ACK, data and FIN together
        second = await session.accept_stream()
        seen = await asyncio.wait_for(read_frames_until(reader, FrameType.WINDOW_UPDATE), 5)
        assert seen[-1][:3] == (FrameType.WINDOW_UPDATE, Flag.FIN, 2)
        seen = await asyncio.wait_for(read_frames_until(reader, FrameType.WINDOW_UPDATE), 5)
        assert seen[-1][:3] == (FrameType.WINDOW_UPDATE, Flag.ACK, second.stream_id)
    finally:
        await session.close()
        writer.close()
        server.close()

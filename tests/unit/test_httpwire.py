"""HTTP/1.1 over a yamux stream and over sockets: streaming bodies, limits, 101 splice."""

from __future__ import annotations

import asyncio
import random

import h11
import pytest

from agent_relay.httpwire import HttpConnection, HttpProtocolError, SocketChannel, splice
from agent_relay.httpwire.policy import plain_body_length
from tests.conftest import tcp_pair


async def test_request_and_streamed_response_over_a_mux_stream() -> None:
    body = random.randbytes(3 * 1024 * 1024)
    async with tcp_pair() as (client, server):
        up = await client.open_stream()
        requester = HttpConnection(up, client=True)
        await requester.send(
            h11.Request(
                method="POST",
                target="/api/upload?x=1",
                headers=[("host", "agent"), ("transfer-encoding", "chunked")],
            )
        )

        async def upload() -> None:
            for start in range(0, len(body), 100_000):
                await requester.send_data(body[start : start + 100_000])
            await requester.end_message()

        uploading = asyncio.create_task(upload())

        down = await server.accept_stream()
        responder = HttpConnection(down, client=False)
        request = await responder.receive_request()
        assert request is not None
        assert (request.method, request.target) == (b"POST", b"/api/upload?x=1")
        received = b"".join([chunk async for chunk in responder.receive_body()])
        assert received == body
        await uploading
        await responder.send(h11.Response(status_code=200, headers=[("content-length", "5")]))
        await responder.send_data(b"hello")
        await responder.end_message()

        response = await requester.receive_response()
        assert response.status_code == 200
        assert b"".join([c async for c in requester.receive_body()]) == b"hello"
        assert requester.can_reuse
        assert responder.can_reuse


async def test_oversized_head_is_431() -> None:
    async with tcp_pair() as (client, server):
        up = await client.open_stream()
        await up.write(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n")
        conn = HttpConnection(await server.accept_stream(), client=False, max_head_size=8192)
        with pytest.raises(HttpProtocolError) as caught:
            await conn.receive_request()
        assert caught.value.status == 431


async def test_garbage_is_400() -> None:
    async with tcp_pair() as (client, server):
        up = await client.open_stream()
        await up.write(b"\x16\x03\x01 not http at all\r\n\r\n")
        conn = HttpConnection(await server.accept_stream(), client=False)
        with pytest.raises(HttpProtocolError) as caught:
            await conn.receive_request()
        assert caught.value.status == 400


async def test_truncated_response_body_is_an_error() -> None:
    async with tcp_pair() as (client, server):
        up = await client.open_stream()
        conn = HttpConnection(up, client=True)
        await conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        await conn.end_message()
        down = await server.accept_stream()
        await down.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await down.close()
        response = await conn.receive_response()
        assert response.status_code == 200
        with pytest.raises(HttpProtocolError, match="without sending complete message body"):
            async for _ in conn.receive_body():
                pass


async def test_switching_protocols_then_raw_splice() -> None:
    """A client socket ↔ mux stream ↔ upstream socket, spliced after a 101."""

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = HttpConnection(SocketChannel(reader, writer), client=False)
        request = await conn.receive_request()
        assert request is not None
        await conn.send(
            h11.InformationalResponse(
                status_code=101, headers=[("upgrade", "echo"), ("connection", "upgrade")]
            )
        )
        leftover = conn.trailing_data()
        writer.write(leftover.upper())
        while data := await reader.read(1024):
            writer.write(data.upper())
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with tcp_pair() as (client, session):
        stream = await client.open_stream()
        conn = HttpConnection(stream, client=True)
        await conn.send(
            h11.Request(
                method="GET",
                target="/echo",
                headers=[("host", "x"), ("upgrade", "echo"), ("connection", "upgrade")],
            )
        )
        await conn.end_message()

        async def relay_side() -> None:
            down = await session.accept_stream()
            socket = SocketChannel(*await asyncio.open_connection("127.0.0.1", port))
            await splice(down, socket)

        relaying = asyncio.create_task(relay_side())
        response = await conn.receive_response()
        assert response.status_code == 101
        assert conn.trailing_data() == b""
        await stream.write(b"hello ")
        await stream.write(b"world")
        await stream.close()
        got = await stream.read_all(limit=100)
        assert got == b"HELLO WORLD"
        await asyncio.wait_for(relaying, 5)
    server.close()


async def test_a_server_reading_the_body_says_100_continue_first() -> None:
    """A client that sent ``Expect: 100-continue`` holds its body back (curl does for
    bodies over 1 MiB, for a second): reading the body must tell it to go on."""
    async with tcp_pair() as (client, server):
        up = await client.open_stream()
        await up.write(
            b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n"
        )
        conn = HttpConnection(await server.accept_stream(), client=False)
        request = await conn.receive_request()
        assert request is not None
        body = conn.receive_body()

        async def first_chunk() -> bytes:
            return await anext(body)

        reading = asyncio.create_task(first_chunk())
        async with asyncio.timeout(5):
            interim = await up.read(1024)
        assert interim == b"HTTP/1.1 100 \r\n\r\n"
        await up.write(b"hello")
        assert await reading == b"hello"
        assert await anext(body, None) is None
        await conn.send(h11.Response(status_code=204, headers=[]))
        assert (await up.read(1024)).startswith(b"HTTP/1.1 204 ")


_EMPTY = [("content-length", "0")]


async def test_no_100_continue_unasked_or_once_answered() -> None:
    async with tcp_pair() as (client, server):
        up = await client.open_stream()
        conn = HttpConnection(await server.accept_stream(), client=False)
        # Not asked for: the body is read without a word.
        await up.write(b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
        assert await conn.receive_request() is not None
        assert b"".join([c async for c in conn.receive_body()]) == b"hi"
        await conn.send_message(h11.Response(status_code=200, headers=_EMPTY), b"")
        async with asyncio.timeout(5):
            assert (await up.read(1024)).startswith(b"HTTP/1.1 200 ")
        conn.start_next_cycle()
        # Asked for, but answered with a final response first: the body (if the client
        # sends it anyway) is discarded without a 100 after the answer.
        await up.write(
            b"POST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
        )
        assert await conn.receive_request() is not None
        await conn.send_message(h11.Response(status_code=401, headers=_EMPTY), b"")
        await up.write(b"no")
        assert await conn.discard_body(1024)
        async with asyncio.timeout(5):
            answer = await up.read(1024)
        assert answer.startswith(b"HTTP/1.1 401 ")
        assert b" 100 " not in answer


class _RecordingChannel:
    """A byte channel that keeps each write apart, and serves reads from a script."""

    def __init__(self, incoming: list[bytes]) -> None:
        self.writes: list[bytes] = []
        self._incoming = incoming

    async def read(self, max_bytes: int = 65536) -> bytes:
        return self._incoming.pop(0) if self._incoming else b""

    async def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def close(self) -> None:
        pass

    def reset(self) -> None:
        pass


async def test_a_started_head_goes_out_with_the_body_in_one_write() -> None:
    channel = _RecordingChannel([b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"])
    conn = HttpConnection(channel, client=False)
    assert await conn.receive_request() is not None
    conn.start_message(h11.Response(status_code=200, headers=[("content-length", "5")]))
    assert channel.writes == []
    await conn.send_data(b"hello")
    await conn.end_message()
    assert channel.writes == [b"HTTP/1.1 200 \r\ncontent-length: 5\r\n\r\nhello"]


async def test_body_ready_says_whether_a_read_would_wait() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
    channel = _RecordingChannel([head + b"hello", b"world"])
    conn = HttpConnection(channel, client=True)
    await conn.send_message(h11.Request(method="GET", target="/", headers=[("host", "x")]), b"")
    response = await conn.receive_response()
    assert response.status_code == 200
    assert conn.body_ready()  # "hello" came with the head
    assert conn.body_ready()  # asking again does not lose it
    chunks = conn.receive_body()
    assert await anext(chunks) == b"hello"
    assert not conn.body_ready()  # "world" is still to be read
    assert await anext(chunks) == b"world"
    assert await anext(chunks, None) is None
    assert conn.can_reuse
    conn.start_next_cycle()


async def test_a_body_error_seen_while_peeking_is_raised_as_it_was() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    conn = HttpConnection(_RecordingChannel([head + b"zz\r\n"]), client=True)
    await conn.send_message(h11.Request(method="GET", target="/", headers=[("host", "x")]), b"")
    await conn.receive_response()
    assert conn.body_ready()  # what comes next is an error
    with pytest.raises(HttpProtocolError, match="chunk"):
        await anext(conn.receive_body())


def test_plain_body_length_is_the_content_length_of_a_body_that_has_one() -> None:
    length = [(b"content-length", b"10")]
    assert plain_body_length(b"GET", 200, length) == 10
    assert plain_body_length(b"HEAD", 200, length) is None
    assert plain_body_length(b"GET", 204, length) is None
    assert plain_body_length(b"GET", 304, length) is None
    assert plain_body_length(b"GET", 200, [*length, (b"transfer-encoding", b"chunked")]) is None
    assert plain_body_length(b"GET", 200, [*length, (b"content-length", b"11")]) is None
    assert plain_body_length(b"GET", 200, [(b"content-length", b"1e3")]) is None
    assert plain_body_length(b"GET", 200, []) is None


async def test_a_long_body_is_read_past_h11_and_the_connection_is_not_reused() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n"
    channel = _RecordingChannel([head + b"hel", b"lo wo", b"rld"])
    conn = HttpConnection(channel, client=True)
    await conn.send_message(h11.Request(method="GET", target="/", headers=[("host", "x")]), b"")
    response = await conn.receive_response()
    assert response.status_code == 200
    chunks = [c async for c in conn.receive_long_body(11)]
    assert chunks == [b"hel", b"lo wo", b"rld"]  # h11's part, then as read
    assert not conn.can_reuse


async def test_a_long_body_cut_short_is_an_error() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"
    conn = HttpConnection(_RecordingChannel([head, b"only this"]), client=True)
    await conn.send_message(h11.Request(method="GET", target="/", headers=[("host", "x")]), b"")
    await conn.receive_response()
    with pytest.raises(HttpProtocolError, match="middle of a body"):
        async for _ in conn.receive_long_body(100):
            pass


async def test_a_long_body_h11_had_whole_ends_where_h11_says() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    conn = HttpConnection(_RecordingChannel([head]), client=True)
    await conn.send_message(h11.Request(method="GET", target="/", headers=[("host", "x")]), b"")
    await conn.receive_response()
    assert [c async for c in conn.receive_long_body(5)] == [b"hello"]
    assert conn.can_reuse  # h11 saw it all

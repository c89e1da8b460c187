"""One relayed stream served by :func:`serve_stream`, without a relay: the test plays the
relay on a yamux session over loopback TCP, and scripted local servers misbehave in
ways a real one rarely does on cue (framing, heads, timeouts)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import h11
import pytest

from agent_relay.host import ForwardLimits, PoolLimits, UpstreamPool, UpstreamTarget, serve_stream
from agent_relay.httpwire import HttpConnection
from agent_relay.httpwire.codec import Response
from agent_relay.mux import MuxSession, MuxStream
from tests.conftest import tcp_pair
from tests.support.localserver import LocalServer, local_server

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[str]:
    """A local server that runs ``script`` on each connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@contextlib.asynccontextmanager
async def host_side(
    upstream: str, limits: ForwardLimits | None = None
) -> AsyncIterator[tuple[MuxSession, UpstreamPool]]:
    """A session whose accepted streams are served like the connector does; yields the
    relay's end of it."""
    pool = UpstreamPool(UpstreamTarget.parse(upstream), PoolLimits(idle_timeout=5))
    async with tcp_pair() as (host, relay):
        tasks: set[asyncio.Task[None]] = set()

        async def accept() -> None:
            while True:
                stream = await host.accept_stream()
                served = serve_stream(stream, pool, limits or ForwardLimits())
                tasks.add(asyncio.create_task(served))

        accepting = asyncio.create_task(accept())
        try:
            yield relay, pool
        finally:
            accepting.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(accepting, *tasks, return_exceptions=True)
            await pool.close()


async def _receive(http: HttpConnection) -> tuple[Response, bytes]:
    response = await http.receive_response()
    assert type(response) is Response
    body = b"".join([chunk async for chunk in http.receive_body()])
    return response, body


async def request(
    relay: MuxSession, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[Response, bytes, MuxStream]:
    stream = await relay.open_stream()
    http = HttpConnection(stream, client=True)
    await http.send_message(
        h11.Request(method=method, target=target, headers=[("host", "relay"), *headers]), body
    )
    response, data = await _receive(http)
    return response, data, stream


def header(response: Response, name: bytes) -> bytes | None:
    return next((v for k, v in response.headers if k == name), None)


# --------------------------------------------------------------------- the relay's request


@pytest.fixture
async def local() -> AsyncIterator[LocalServer]:
    async with local_server() as server:
        yield server


async def raw_exchange(relay: MuxSession, data: bytes) -> bytes:
    stream = await relay.open_stream()
    await stream.write(data)
    answer = await asyncio.wait_for(stream.read_all(1024 * 1024), 5)
    await stream.close()
    return answer


async def test_oversized_request_head_is_431(local: LocalServer) -> None:
    async with host_side(local.url, ForwardLimits(max_head_size=4096)) as (relay, _):
        answer = await raw_exchange(
            relay, b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 8000 + b"\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert local.connections == 0


async def test_malformed_request_is_400(local: LocalServer) -> None:
    async with host_side(local.url) as (relay, _):
        answer = await raw_exchange(relay, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"error"' in answer


async def test_a_relay_that_sends_no_head_gets_408(local: LocalServer) -> None:
    async with host_side(local.url, ForwardLimits(head_timeout=0.1)) as (relay, _):
        stream = await relay.open_stream()
        await stream.write(b"GET / HTT")
        answer = await asyncio.wait_for(stream.read_all(65536), 5)
        assert answer.startswith(b"HTTP/1.1 408 ")


async def test_the_stream_is_reset_if_the_relay_never_ends_it(local: LocalServer) -> None:
    async with host_side(local.url, ForwardLimits(linger=0.2)) as (relay, _):
        response, _, stream = await request(relay, "GET", "/echo", [])
        assert response.status_code == 200
        assert await asyncio.wait_for(stream.read(), 1) == b""  # our FIN after the response
        # The relay keeps its side open: after the linger the host gives up on it.
        for _ in range(100):
            if relay.num_streams == 0:
                break
            await asyncio.sleep(0.01)
        assert relay.num_streams == 0


async def test_a_chunked_upload_is_forwarded(local: LocalServer) -> None:
    async with host_side(local.url) as (relay, _):
        stream = await relay.open_stream()
        http = HttpConnection(stream, client=True)
        await http.send(
            h11.Request(
                method="POST",
                target="/upload",
                headers=[("host", "r"), ("transfer-encoding", "chunked")],
            )
        )
        for part in (b"a" * 1000, b"b" * 70_000, b"c"):
            await http.send_data(part)
        await http.end_message()
        response, body = await _receive(http)
        assert response.status_code == 200
        size, _, _ = body.partition(b" ")
        assert size == b"71001"
        sent = dict(local.requests[0].headers)
        assert sent[b"transfer-encoding"] == b"chunked"
        assert sent[b"x-vk-relayed"] == b"1"


# --------------------------------------------------------------------- the local server's answer


def answer_with(raw: bytes) -> Script:
    """A local server that reads a request head and writes ``raw``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()

    return script


async def test_a_close_delimited_response_is_rechunked() -> None:
    script = answer_with(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello, world")
    async with scripted_server(script) as url, host_side(url) as (relay, pool):
        response, body, _ = await request(relay, "GET", "/", [])
        assert response.status_code == 200
        assert body == b"hello, world"
        assert header(response, b"transfer-encoding") == b"chunked"
        assert pool.idle == 0  # a close-delimited answer ends the connection


async def test_head_and_304_have_no_body(local: LocalServer) -> None:
    script = answer_with(b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n")
    async with scripted_server(script) as url, host_side(url) as (relay, _):
        response, body, _ = await request(relay, "GET", "/", [("if-none-match", "x")])
        assert (response.status_code, body) == (304, b"")
    async with host_side(local.url) as (relay, _):
        response, body, _ = await request(relay, "HEAD", "/bytes/5000", [])
        assert response.status_code == 200
        assert header(response, b"content-length") == b"5000"
        assert body == b""


async def test_a_70_kb_response_head_passes() -> None:
    """The reference passes heads of 70 KB (many cookies, long signed URLs)."""
    big = b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 70_000 + b"\r\ncontent-length: 2\r\n\r\nok"
    script = answer_with(big)
    async with scripted_server(script) as url, host_side(url) as (relay, _):
        response, body, _ = await request(relay, "GET", "/", [])
        assert (response.status_code, body) == (200, b"ok")
        assert len(dict(response.headers)[b"x-big"]) == 70_000


async def test_an_oversized_response_head_is_502() -> None:
    big = b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 300_000 + b"\r\ncontent-length: 0\r\n\r\n"
    script = answer_with(big)
    async with scripted_server(script) as url, host_side(url) as (relay, _):
        response, body, _ = await request(relay, "GET", "/", [])
        assert response.status_code == 502
        assert "bad response from the local server" in json.loads(body)["error"]


async def test_100_continue_is_not_forwarded() -> None:
    script = answer_with(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"
    )
    async with scripted_server(script) as url, host_side(url) as (relay, _):
        response, body, _ = await request(relay, "GET", "/", [])
        assert (response.status_code, body) == (201, b"ok")


async def test_a_101_without_an_upgrade_request_is_502() -> None:
    script = answer_with(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n")
    async with scripted_server(script) as url, host_side(url) as (relay, _):
        response, body, _ = await request(relay, "GET", "/", [])
        assert response.status_code == 502
        assert json.loads(body)["error"]


async def test_a_connection_is_kept_only_if_it_is_clean() -> None:
    clean = answer_with(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    junk = answer_with(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 404 Forged\r\n\r\n")
    closing = answer_with(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
    for script, kept in ((clean, 1), (junk, 0), (closing, 0)):

        async def hold_open(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, script: Script = script
        ) -> None:
            await script(reader, writer)
            await reader.read()  # keep the connection until the connector closes it

        async with scripted_server(hold_open) as url, host_side(url) as (relay, pool):
            response, body, _ = await request(relay, "GET", "/", [])
            assert (response.status_code, body) == (200, b"ok")
            assert pool.idle == kept, script

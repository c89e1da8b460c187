"""The in-memory stream pair (tests/support/streams.py) carries HTTP and a yamux session
like a socket does."""

from __future__ import annotations

import asyncio

import h11

from agent_relay.httpwire import HttpConnection
from agent_relay.mux import MuxSession
from tests.support.streams import memory_pair


async def test_http_exchange_over_a_memory_pair() -> None:
    a, b = memory_pair()
    client = HttpConnection(a, client=True)
    server = HttpConnection(b, client=False)
    request = h11.Request(
        method="POST", target="/x", headers=[("host", "h"), ("content-length", "5")]
    )
    await client.send_message(request, b"hello")
    got = await server.receive_request()
    assert got is not None
    assert got.target == b"/x"
    assert b"".join([c async for c in server.receive_body()]) == b"hello"
    await server.send_message(
        h11.Response(status_code=200, headers=[("content-length", "2")]), b"ok"
    )
    response = await client.receive_response()
    assert response.status_code == 200
    assert b"".join([c async for c in client.receive_body()]) == b"ok"


async def test_mux_session_over_a_memory_pair() -> None:
    a, b = memory_pair()
    client = MuxSession(a, client=True)
    server = MuxSession(b, client=False)
    try:
        stream = await client.open_stream()
        await stream.write(b"ping")
        await stream.close()
        accepted = await asyncio.wait_for(server.accept_stream(), 5)
        assert await accepted.read() == b"ping"
        assert await accepted.read() == b""
    finally:
        await client.close()
        await server.close()


async def test_half_close_and_backpressure() -> None:
    a, b = memory_pair(limit=4)
    await a.write(b"12345")  # over the limit, but the buffer was empty
    blocked = asyncio.ensure_future(a.write(b"6"))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # waits for the reader
    assert await b.read(3) == b"123"
    await asyncio.wait_for(blocked, 1)
    await a.close()
    assert await b.read() == b"456"
    assert await b.read() == b""

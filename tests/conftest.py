"""Fixtures shared by every test package: a real relay on loopback (one definition), a
local agent server, and yamux session pairs over real loopback sockets and WebSockets.
Helpers that are not fixtures live in ``tests/support/``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from agent_relay.mux import MuxConfig, MuxSession
from agent_relay.transport import SocketByteStream, WebSocketByteStream
from tests.support.localserver import LocalServer, local_server
from tests.support.relay import Relay, running_relay

SessionPair = tuple[MuxSession, MuxSession]
PairFactory = Callable[..., Any]


@contextlib.asynccontextmanager
async def tcp_pair(
    client_config: MuxConfig | None = None, server_config: MuxConfig | None = None
) -> AsyncIterator[SessionPair]:
    accepted: asyncio.Future[SocketByteStream] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(SocketByteStream(reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = MuxSession(SocketByteStream(reader, writer), client=True, config=client_config)
    srv = MuxSession(await accepted, client=False, config=server_config)
    try:
        yield client, srv
    finally:
        await client.close()
        await srv.close()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def ws_pair(
    client_config: MuxConfig | None = None, server_config: MuxConfig | None = None
) -> AsyncIterator[SessionPair]:
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[MuxSession] = loop.create_future()
    done = loop.create_future()

    async def handler(websocket: ServerConnection) -> None:
        session = MuxSession(WebSocketByteStream(websocket), client=False, config=server_config)
        accepted.set_result(session)
        await session.wait_closed()
        await done

    async with ws_serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        websocket = await ws_connect(f"ws://127.0.0.1:{port}/mux", max_size=None)
        client = MuxSession(WebSocketByteStream(websocket), client=True, config=client_config)
        srv = await accepted
        try:
            yield client, srv
        finally:
            await client.close()
            await srv.close()
            done.set_result(None)


@pytest.fixture(params=["tcp", "ws"])
def make_pair(request: pytest.FixtureRequest) -> PairFactory:
    """A factory of connected (client, server) session pairs over the given transport."""
    return tcp_pair if request.param == "tcp" else ws_pair


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'relay.sqlite3'}"


@pytest.fixture
def relay_database(sqlite_url: str) -> str:
    """The database the `relay` fixture runs on; a module overrides this to change it."""
    return sqlite_url


@pytest.fixture
async def relay(relay_database: str) -> AsyncIterator[Relay]:
    async with running_relay(relay_database) as running:
        yield running


@pytest.fixture
async def local() -> AsyncIterator[LocalServer]:
    async with local_server() as server:
        yield server

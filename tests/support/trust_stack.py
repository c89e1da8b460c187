"""A relay, a trusting connector and a local server, for the client SDK and CLI tests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agent_relay.client import (
    KeyStore,
    Pairing,
    RelayClient,
)
from agent_relay.host import (
    Connector,
    ConnectorConfig,
    StaticToken,
    UpstreamPool,
    UpstreamTarget,
)
from agent_relay.trust import TrustHost, protect
from agent_relay.trust.limits import TrustLimits

from .connector import FAST, eventually, running_connector
from .hostile import Answer, HostileRelay, Recorded, hostile_relay, serve_asgi
from .relay import Relay, running_relay

MIB = 1024 * 1024
BIG = hashlib.sha256(b"seed").digest() * (4 * MIB // 32)  # 4 MiB: streamed in records


@dataclass
class Stack:
    relay: Relay
    host: TrustHost
    upstream: Upstream
    host_id: str
    data_dir: Path
    hostile: HostileRelay
    mode: str

    def store(self, name: str = "client") -> KeyStore:
        return KeyStore(self.data_dir / name)

    async def pair(
        self, *, via_hostile: bool = True, name: str = "client", token: str | None = None
    ) -> Pairing:
        code = self.host.issue_code(time.time()).code
        return await RelayClient.pair(
            self.hostile.url if via_hostile else self.relay.url,
            self.host_id,
            code,
            token=token or self.relay.token,
            store=self.store(name),
        )

    def client(self, pairing: Pairing, **options: object) -> RelayClient:
        return RelayClient(pairing, token=self.relay.token, **options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def trust_stack(
    tmp_path: Path,
    sqlite_url: str,
    mode: str = "connector",
    limits: TrustLimits | None = None,
    *,
    signed_headers: bool = True,
) -> AsyncIterator[Stack]:
    """``connector``: the connector's built-in trust layer in front of a plain local
    server; ``asgi``: a plain connector in front of a local server under protect().
    ``signed_headers`` False: a host that checks the reference's signed string only."""
    upstream = Upstream()
    async with contextlib.AsyncExitStack() as stack:
        relay = await stack.enter_async_context(running_relay(sqlite_url))
        if mode == "connector":
            host = TrustHost.open(tmp_path / "host", limits=limits, signed_headers=signed_headers)
            local_url = await stack.enter_async_context(serve_asgi(upstream.app()))
            await stack.enter_async_context(connector_with_trust(relay, local_url, host))
        else:
            app = protect(
                upstream.app(),
                data_dir=tmp_path / "host",
                limits=limits,
                signed_headers=signed_headers,
            )
            host = app.host
            local_url = await stack.enter_async_context(serve_asgi(app))
            await stack.enter_async_context(running_connector(relay, local_url))
        hostile = await stack.enter_async_context(hostile_relay(relay.url))
        host_id = str(await relay.host_id())
        yield Stack(relay, host, upstream, host_id, tmp_path, hostile, mode)


def flip_last_byte(recorded: Recorded, answer: Answer) -> Answer:
    if answer.body:
        answer.body = answer.body[:-1] + bytes([answer.body[-1] ^ 1])
    return answer


class Upstream:
    """The local agent server: counts the side effects the attacks must not cause."""

    def __init__(self) -> None:
        self.posts = 0

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            body = await request.body()
            if request.method == "POST":
                self.posts += 1
            return JSONResponse(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "body": body.decode("utf-8", "replace"),
                    "posts": self.posts,
                }
            )

        async def big(request: Request) -> Response:
            return Response(BIG, media_type="application/octet-stream")

        async def headers(request: Request) -> Response:
            """The request headers the local server got, and answer headers to sign."""
            if request.method == "POST":
                self.posts += 1
            seen = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw]
            return JSONResponse(
                {"headers": seen},
                headers={
                    "content-disposition": 'attachment; filename="report.json"',
                    "x-app": "from the host",
                },
            )

        async def moved(request: Request) -> Response:
            return Response(status_code=303, headers={"location": "/echo"})

        async def events(request: Request) -> StreamingResponse:
            async def generate() -> AsyncIterator[bytes]:
                for i in range(3):
                    yield f"data: event {i}\n\n".encode()
                    await asyncio.sleep(0.05)

            return StreamingResponse(generate(), media_type="text/event-stream")

        async def ticks(request: Request) -> StreamingResponse:
            async def generate() -> AsyncIterator[bytes]:
                for i in range(200):
                    yield f"data: tick {i}\n\n".encode()
                    await asyncio.sleep(0.02)

            return StreamingResponse(generate(), media_type="text/event-stream")

        async def terminal(websocket: WebSocket) -> None:
            await websocket.accept()
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    text = await websocket.receive_text()
                    if text == "bye":
                        await websocket.close(4000, "asked to")
                        return
                    await websocket.send_text(f"echo:{text}")
                    if text == "twice":
                        await websocket.send_text("echo:again")

        return Starlette(
            routes=[
                Route("/echo", echo, methods=["GET", "POST", "PUT"]),
                Route("/big", big),
                Route("/headers", headers, methods=["GET", "POST"]),
                Route("/moved", moved),
                Route("/events", events),
                Route("/ticks", ticks),
                WebSocketRoute("/terminal", terminal),
            ]
        )


@contextlib.asynccontextmanager
async def connector_with_trust(
    relay: Relay, upstream_url: str, trust: TrustHost
) -> AsyncIterator[Connector]:
    pool = UpstreamPool(UpstreamTarget.parse(upstream_url))
    settings = ConnectorConfig(
        relay_url=relay.url, machine_id="machine-1", name="test-host", backoff=FAST
    )
    connector = Connector(settings, StaticToken(relay.token), pool, trust=trust)
    running = asyncio.create_task(connector.run())
    try:
        await eventually(lambda: connector.state.connected)
        yield connector
    finally:
        await connector.stop(timeout=5)
        await running
        await pool.close()

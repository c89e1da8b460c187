"""A sample ASGI app behind the trust layer, served on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

BIG = bytes(range(256)) * 8192  # 2 MiB: above the 1 MiB buffer limit
SLOW = 2.5  # seconds /slow thinks: longer than the connector's 1 s check for revocations


def sample_app() -> Starlette:
    async def echo(request: Request) -> Response:
        return Response(await request.body(), headers={"x-target": request.url.path})

    async def big(request: Request) -> Response:
        return Response(BIG, media_type="application/octet-stream")

    async def events(request: Request) -> StreamingResponse:
        async def generate() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(0.2)

        return StreamingResponse(generate(), media_type="text/event-stream")

    async def forever(request: Request) -> StreamingResponse:
        async def generate() -> AsyncIterator[bytes]:
            while True:
                yield b"data: tick\n\n"
                await asyncio.sleep(0.05)

        return StreamingResponse(generate(), media_type="text/event-stream")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(SLOW)
        return Response(b"late")

    async def drip(request: Request) -> StreamingResponse:
        async def generate() -> AsyncIterator[bytes]:
            yield b"first "
            await asyncio.sleep(SLOW)
            yield b"last"

        # A known length: a signed answer this small is read whole and signed in its head.
        return StreamingResponse(
            generate(), media_type="text/plain", headers={"content-length": "10"}
        )

    async def terminal(websocket: WebSocket) -> None:
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await websocket.send_text("echo:" + message["text"])
                else:
                    await websocket.send_bytes(message.get("bytes") or b"")

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/big", big),
            Route("/events", events),
            Route("/forever", forever),
            Route("/slow", slow),
            Route("/drip", drip),
            Route("/whoami", lambda r: JSONResponse({"ok": True})),
            WebSocketRoute("/terminal", terminal),
        ]
    )


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(1000):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

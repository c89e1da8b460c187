"""A hostile relay for the trust tests: an HTTP and WebSocket man in the middle in front
of the real relay (uvicorn in the test's loop, httpx and websockets towards the relay).
By default it forwards faithfully; the tests arm it to tamper with answers, record and
replay requests, swap answers between requests, and reorder WebSocket frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
import websockets
from websockets.asyncio.client import connect as ws_connect

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOP_BY_HOP = {b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive"}


@dataclass
class Recorded:
    method: str
    target: str  # path and query, as sent to the relay
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


# Hooks: an answer's head and whole body may be rewritten (the body is held whole only
# when a hook wants it); WebSocket messages from the host pass through ``ws_down``.
AnswerHook = Callable[[Recorded, Answer], Answer]
WsHook = Callable[[list[str | bytes]], list[str | bytes]]


@dataclass
class HostileRelay:
    relay_url: str
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    on_answer: AnswerHook | None = None  # rewrite a whole answer
    on_request: Callable[[Recorded], Recorded] | None = None
    ws_down: WsHook | None = None  # given the frames so far held, returns those to send
    ws_hold: int = 1  # frames held before ws_down decides
    ws_up: WsHook | None = None  # the same for frames from the client, ws_up_hold of them
    ws_up_hold: int = 1
    ws_targets: list[str] = field(default_factory=list)  # upgrades seen, query included
    _http: httpx.AsyncClient | None = None

    def reset(self) -> None:
        self.on_answer = self.on_request = self.ws_down = self.ws_up = None
        self.ws_hold = self.ws_up_hold = 1

    async def replay(self, recorded: Recorded) -> httpx.Response:
        """Send a recorded request to the real relay again, byte for byte."""
        assert self._http is not None
        return await self._http.request(
            recorded.method,
            self.relay_url + recorded.target,
            headers=recorded.headers,
            content=recorded.body,
        )

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http_exchange(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _http_exchange(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._http is not None
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k not in HOP_BY_HOP
        ]
        recorded = Recorded(scope["method"], target, headers, bytes(body))
        self.requests.append(recorded)
        if self.on_request is not None:
            recorded = self.on_request(recorded)
        request = self._http.build_request(
            recorded.method,
            self.relay_url + recorded.target,
            headers=recorded.headers,
            content=recorded.body,
        )
        response = await self._http.send(request, stream=True)
        try:
            out_headers = [
                (k.lower(), v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP
            ]
            if self.on_answer is None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": out_headers,
                    }
                )
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            answer = Answer(response.status_code, out_headers, await response.aread())
            self.answers.append(answer)
            answer = self.on_answer(recorded, answer)
            await send(
                {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
            )
            await send({"type": "http.response.body", "body": answer.body, "more_body": False})
        finally:
            await response.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        await receive()  # websocket.connect
        self.ws_targets.append(target)
        url = "ws://" + self.relay_url.removeprefix("http://") + target
        try:
            upstream = await ws_connect(url, open_timeout=10)
        except websockets.InvalidStatus as exc:
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": exc.response.status_code,
                    "headers": [
                        (k.lower().encode(), v.encode())
                        for k, v in exc.response.headers.raw_items()
                        if k.lower().encode() not in HOP_BY_HOP
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": exc.response.body or b""})
            return
        await send({"type": "websocket.accept"})

        async def up() -> None:
            held: list[str | bytes] = []
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close()
                    return
                data = message.get("text")
                held.append(data if data is not None else message.get("bytes") or b"")
                if self.ws_up is not None and len(held) < self.ws_up_hold:
                    continue
                out = self.ws_up(held) if self.ws_up is not None else held
                held = []
                for item in out:
                    await upstream.send(item)

        async def down() -> None:
            held: list[str | bytes] = []
            with contextlib.suppress(websockets.ConnectionClosed):
                async for data in upstream:
                    held.append(data)
                    if self.ws_down is not None and len(held) < self.ws_hold:
                        continue
                    out = self.ws_down(held) if self.ws_down is not None else held
                    held = []
                    for item in out:
                        key = "text" if isinstance(item, str) else "bytes"
                        await send({"type": "websocket.send", key: item})
            await send({"type": "websocket.close", "code": 1000})

        tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await upstream.close()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """``app`` on uvicorn on a free loopback port; yields its base URL."""
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
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def hostile_relay(relay_url: str) -> AsyncIterator[HostileRelay]:
    hostile = HostileRelay(relay_url)
    async with httpx.AsyncClient(timeout=30) as http:
        hostile._http = http
        async with serve_asgi(hostile) as url:
            hostile.url = url
            yield hostile

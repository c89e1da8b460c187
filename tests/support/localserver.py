"""A local agent server for connector tests: HTTP/1.1 with keep-alive on TCP or a Unix
socket, a few routes (some of them misbehaving on purpose), and counts of the
connections it accepted, so tests can prove the connector reuses them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import h11

from agent_relay.httpwire import HttpConnection, HttpProtocolError, SocketChannel
from agent_relay.httpwire.codec import Request

from .fakehost import CHUNK, drain, pattern, respond


class LocalServer:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.url = ""
        self.connections = 0  # accepted since start
        self.open = 0  # open right now
        self.busy = 0  # requests being answered right now
        self.max_busy = 0
        self.bytes_sent = 0  # body bytes of /bytes/N answers
        self.requests: list[Request] = []
        # When set, the n-th request on each connection is dropped: the connection closes
        # without an answer (as a server whose keep-alive timer fired just then).
        self.drop_request_number: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start_tcp(self) -> LocalServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def start_unix(self, path: Path) -> LocalServer:
        self._server = await asyncio.start_unix_server(self._serve, str(path))
        self.url = f"unix:{path}"
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open += 1
        channel = SocketChannel(reader, writer)
        http = HttpConnection(channel, client=False)
        number = 0
        try:
            while True:
                request = await http.receive_request()
                if request is None:
                    return
                number += 1
                if number == self.drop_request_number:
                    return
                self.requests.append(request)
                self.busy += 1
                self.max_busy = max(self.max_busy, self.busy)
                try:
                    keep = await self._route(http, channel, request)
                finally:
                    self.busy -= 1
                if not keep or not http.can_reuse:
                    return
                http.start_next_cycle()
        except (HttpProtocolError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open -= 1
            self._tasks.discard(task)
            writer.close()

    async def _route(self, http: HttpConnection, channel: SocketChannel, request: Request) -> bool:
        """Answer one request; False closes the connection afterwards."""
        target = request.target.decode()
        path = target.partition("?")[0]
        if path == "/echo":
            body = b"".join([c async for c in http.receive_body()])
            await respond(http, 200, body, [("x-target", target)])
        elif path == "/headers":
            await drain(http)
            headers = [[k.decode(), v.decode()] for k, v in request.headers]
            await respond(http, 200, json.dumps({"target": target, "headers": headers}).encode())
        elif path == "/upload":
            digest = hashlib.sha256()
            size = 0
            async for chunk in http.receive_body():
                digest.update(chunk)
                size += len(chunk)
            await respond(http, 200, f"{size} {digest.hexdigest()}".encode())
        elif path.startswith("/bytes/"):
            await drain(http)
            size = int(path.removeprefix("/bytes/"))
            await http.send(h11.Response(status_code=200, headers=[("content-length", str(size))]))
            block = pattern(CHUNK)  # pattern(size) is this block repeated
            sent = 0
            while sent < size:
                part = block[: size - sent]
                await http.send_data(part)
                sent += len(part)
                self.bytes_sent += len(part)
            await http.end_message()
        elif path.startswith("/sleep/"):
            await drain(http)
            await asyncio.sleep(float(path.removeprefix("/sleep/")))
            await respond(http, 200, b"slept")
        elif path == "/trickle":
            # One event, then a long quiet spell (server-sent events between events).
            await drain(http)
            await http.send(h11.Response(status_code=200, headers=[("content-type", "text/plain")]))
            await http.send_data(b"event 1\n")
            await asyncio.sleep(30)
            await http.send_data(b"event 2\n")
            await http.end_message()
        elif path == "/early-answer":
            # Answers before reading the request body, then drops the body (as servers
            # do; closing with unread data would reset the connection).
            await respond(http, 413, b"too big")
            await drain(http)
        elif path == "/garbage":
            await drain(http)
            await channel.write(b"this is not HTTP\r\n\r\n")
            return False
        elif path == "/silence":
            await drain(http)
            return False  # close without an answer
        elif path == "/reset":
            await drain(http)
            channel.reset()  # TCP RST, no answer
            return False
        elif path == "/break" or path.startswith("/break/"):
            # /break/SIZE: a body announced at SIZE bytes (100000 by default) breaks off.
            await drain(http)
            announced = path.removeprefix("/break").strip("/") or "100000"
            await http.send(h11.Response(status_code=200, headers=[("content-length", announced)]))
            await http.send_data(b"x" * 1000)
            await asyncio.sleep(0.2)  # the head has gone all the way to the client
            await channel.aclose()
            return False
        elif path == "/upgrade":
            await drain(http)
            await http.send(
                h11.InformationalResponse(
                    status_code=101, headers=[("upgrade", "echo"), ("connection", "upgrade")]
                )
            )
            early = http.trailing_data()
            if early:
                await channel.write(early.upper())
            while data := await channel.read():
                await channel.write(data.upper())
            await channel.close()
            return False
        else:
            await drain(http)
            await respond(http, 404, b"not here")
        return True


@contextlib.asynccontextmanager
async def local_server(unix_path: Path | None = None) -> AsyncIterator[LocalServer]:
    server = LocalServer()
    await (server.start_unix(unix_path) if unix_path else server.start_tcp())
    try:
        yield server
    finally:
        await server.close()

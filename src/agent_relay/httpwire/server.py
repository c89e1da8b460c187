"""A small asyncio HTTP/1.1 server on the sans-IO codec (``codec.py``): keep-alive,
head-size and idle limits, and handlers that may take the socket over (WebSocket,
``101`` splice)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import lru_cache
from typing import Any

from ..errors import HttpError
from .acceptor import ThreadAcceptor, single_listener
from .channel import SocketChannel, WatchedReader
from .codec import Request, Response
from .connection import HttpConnection, HttpProtocolError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_head_size: int = 16 * 1024
    # Idle keep-alive connection, and the wait for a request head once it started.
    keepalive_timeout: float = 75.0
    head_timeout: float = 30.0
    max_body_size: int = 1024 * 1024  # for bodies a handler reads whole (JSON)
    # The kernel's accept queue (capped by net.core.somaxconn): asyncio's default of 100
    # overflows when 1,000 hosts reconnect at once, and a dropped SYN costs seconds.
    listen_backlog: int = 4096
    # A finished connection is closed once what is still buffered for it has gone out:
    # until then it counts as in flight (a graceful stop waits for it), unless the reader
    # takes nothing for this long.
    flush_timeout: float = 60.0


@dataclass(eq=False)
class Exchange:
    """One request on a connection, and what a handler needs to answer it."""

    http: HttpConnection
    request: Request
    channel: SocketChannel
    peer: str
    limits: ServerLimits
    # Headers every response gets (CORS), set by the router before the handler runs.
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    responded: bool = False
    taken_over: bool = False  # the handler owns the socket now

    @property
    def method(self) -> str:
        return self.request.method.decode("ascii")

    @property
    def target(self) -> str:
        return self.request.target.decode("latin-1")

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.request.headers:
            if key == name:
                return bytes(value)
        return None

    async def read_body(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.http.receive_body():
            size += len(chunk)
            if size > self.limits.max_body_size:
                raise HttpProtocolError("request body too large", 413)
            parts.append(chunk)
        return b"".join(parts)

    async def respond(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        all_headers = [(b"content-length", str(len(body)).encode()), (b"date", http_date())]
        if content_type:
            all_headers.append((b"content-type", content_type))
        all_headers += headers or []
        all_headers += self.extra_headers
        if self._body_too_big_to_skip():
            # The unread body will not be drained for keep-alive: say so, so that the
            # client does not send its next request on a connection we are closing.
            all_headers.append((b"connection", b"close"))
        self.responded = True
        if self.request.method == b"HEAD":
            body = b""
        await self.http.send_message(Response(status, all_headers), body)

    def _body_too_big_to_skip(self) -> bool:
        if self.http.request_done:
            return False
        length = self.header(b"content-length")
        if length is not None and length.isdigit():
            return int(length) > self.limits.max_body_size
        return self.header(b"transfer-encoding") is not None

    async def respond_json(
        self, status: int, payload: object, *, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        await self.respond(status, body, content_type=b"application/json", headers=headers)


Handler = Callable[[Exchange], Awaitable[None]]
ErrorHandler = Callable[[Exchange, BaseException], Awaitable[None]]


class HttpServer:
    """Serves ``handler`` on each request; ``on_error`` answers what it raised."""

    def __init__(
        self,
        handler: Handler,
        on_error: ErrorHandler,
        limits: ServerLimits,
        *,
        render_error: Callable[[HttpError], bytes] = HttpError.body,
        fast_answers: Mapping[bytes, bytes] | None = None,
    ) -> None:
        """``fast_answers`` (path -> JSON body, e.g. a liveness probe's): accept in a
        thread that answers ``GET``/``HEAD`` of those paths itself, ahead of the loop's
        work (acceptor.py); the handler still answers them when the thread does not."""
        self._handler = handler
        self._on_error = on_error
        self._render_error = render_error
        self.limits = limits
        self._fast_answers = fast_answers
        self._server: asyncio.Server | None = None
        self.acceptor: ThreadAcceptor | None = None
        self._adopting: set[asyncio.Task[Any]] = set()
        self._connections: set[asyncio.Task[None]] = set()
        self._idle: set[asyncio.Task[None]] = set()  # waiting for a next request
        self.closing = False

    async def start(self, host: str, port: int) -> tuple[str, int]:
        backlog = self.limits.listen_backlog
        sock = single_listener(host, port, backlog) if self._fast_answers else None
        if sock is not None and self._fast_answers:
            self.acceptor = ThreadAcceptor(
                sock,
                asyncio.get_running_loop(),
                self._adopt,
                self._fast_answers,
                render_date=http_date,
            )
            self.acceptor.start()
            sockname = sock.getsockname()
        else:
            self._server = await asyncio.get_running_loop().create_server(
                self._protocol, host, port, backlog=backlog
            )
            sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def _adopt(self, sock: socket.socket) -> None:
        """A connection the acceptor thread accepted (on the loop): served as any."""
        if self.closing:
            sock.close()
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(self._protocol, sock))
        self._adopting.add(task)
        task.add_done_callback(self._adopted)

    def _protocol(self) -> asyncio.StreamReaderProtocol:
        # A reader that tells when the client leaves (SocketChannel.on_close).
        reader = WatchedReader()
        return asyncio.StreamReaderProtocol(reader, self._serve_connection)

    def _adopted(self, task: asyncio.Task[Any]) -> None:
        self._adopting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a connection could not be set up: %r", task.exception())

    async def stop_accepting(self) -> None:
        self.closing = True
        if self._server is not None:
            self._server.close()
        if self.acceptor is not None:
            await self.acceptor.stop()
        for task in list(self._idle):
            task.cancel()

    async def wait_connections(self, timeout: float) -> None:
        """Let in-flight requests finish for up to ``timeout`` seconds, then cut them."""
        pending = set(self._connections)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else "unix"
        channel = SocketChannel(reader, writer)
        http = HttpConnection(channel, client=False, max_head_size=self.limits.max_head_size)
        try:
            await self._request_loop(http, channel, peer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("unexpected error on a connection from %s", peer)
        finally:
            self._idle.discard(task)
            writer.close()  # flushes the buffer first, then closes
            try:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), self.limits.flush_timeout)
            finally:
                # Only now: a stop that waited for fewer would exit with a response's
                # tail still in the buffer, and the client would get it cut.
                self._connections.discard(task)

    async def _request_loop(self, http: HttpConnection, channel: SocketChannel, peer: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        first = True
        while not self.closing:
            self._idle.add(task)
            try:
                async with asyncio.timeout(
                    self.limits.head_timeout if first else self.limits.keepalive_timeout
                ):
                    request = await http.receive_request()
            except TimeoutError:
                return
            except HttpProtocolError as exc:
                await _answer_protocol_error(http, exc, self._render_error(exc))
                return
            finally:
                self._idle.discard(task)
            if request is None:
                return
            first = False
            exchange = Exchange(http, request, channel, peer, self.limits)
            try:
                await self._handler(exchange)
            except (ConnectionError, ConnectionAbortedError):
                return
            except Exception as exc:
                if exchange.responded or exchange.taken_over:
                    log.debug("error after the response started: %r", exc)
                    return
                await self._on_error(exchange, exc)
            if exchange.taken_over:
                return
            # A handler that answered without reading a (small) body leaves it unread.
            if not http.request_done:
                try:
                    async with asyncio.timeout(self.limits.head_timeout):
                        if not await http.discard_body(self.limits.max_body_size):
                            return
                except (HttpProtocolError, TimeoutError):
                    return
            if not http.can_reuse:
                return
            http.start_next_cycle()


async def _answer_protocol_error(http: HttpConnection, exc: HttpProtocolError, body: bytes) -> None:
    """A request that could not even be parsed: the app's renderer made ``body``."""
    with contextlib.suppress(Exception):
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await http.send_message(Response(exc.status, headers), body)


def http_date() -> bytes:
    """The ``Date`` header's value now (clients check their clock against it)."""
    return _http_date(int(time.time()))


@lru_cache(maxsize=1)
def _http_date(second: int) -> bytes:
    return formatdate(second, usegmt=True).encode("ascii")

"""The local agent server as seen from the connector: where it listens (TCP or a Unix
socket) and a bounded pool of keep-alive HTTP/1.1 connections to it.

A connection goes back to the pool only if the codec says both sides finished their message
and nobody asked to close. While idle, it is watched: the server closing it, or sending
anything at all, retires it at once, and so does ``idle_timeout``. (The watch is a hook
in its stream reader and a timer, not a task reading from it: parking and taking a
connection happen on every request.) A connection that carried a ``101`` is detached:
it belongs to the spliced stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import SupportsIndex
from urllib.parse import urlsplit

from ..httpwire import HttpConnection, SocketChannel
from ..httpwire.channel import READ_SIZE
from .errors import bad_gateway, busy

DEFAULT_MAX_RESPONSE_HEAD = 128 * 1024
# Reads from the local server (and the reader's buffer, which holds up to twice this):
# large reads mean fewer, larger yamux frames and WebSocket messages on a download.
UPSTREAM_READ_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """``http://HOST:PORT`` or ``unix:/path/to.sock``."""

    url: str
    host: str | None = None
    port: int | None = None
    unix_path: str | None = None
    # The Host header, made once (IDNA encoding is slow), not per request.
    host_header: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "host_header", self._host_header())

    @classmethod
    def parse(cls, value: str) -> UpstreamTarget:
        usage = "the upstream must be http://HOST:PORT or unix:/path/to.sock"
        value = value.strip()
        if value.startswith("unix:"):
            path = value.removeprefix("unix:")
            if path.startswith("//"):  # unix:///run/agent.sock
                path = path[2:]
            if not path:
                raise ValueError(f"{usage}, got {value!r}")
            return cls(url=f"unix:{path}", unix_path=path)
        parts = urlsplit(value)
        try:
            port = parts.port or 80
        except ValueError:
            raise ValueError(f"{usage}, got {value!r}") from None
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{usage}, got {value!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError(f"{usage} (no path, query or credentials), got {value!r}")
        return cls(url=f"http://{parts.netloc}", host=parts.hostname, port=port)

    def _host_header(self) -> bytes:
        """The ``Host`` the local server is sent: its own address, as if called directly."""
        if self.host is None:
            return b"localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host.encode("idna").decode()
        return (host if self.port == 80 else f"{host}:{self.port}").encode("ascii")

    async def open(self) -> tuple[WatchedReader, asyncio.StreamWriter]:
        """What ``asyncio.open_connection`` does, with a reader that can be watched."""
        loop = asyncio.get_running_loop()
        reader = WatchedReader(limit=UPSTREAM_READ_SIZE, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        if self.unix_path is not None:
            transport, _ = await loop.create_unix_connection(lambda: protocol, self.unix_path)
        else:
            assert self.host is not None
            assert self.port is not None
            transport, _ = await loop.create_connection(lambda: protocol, self.host, self.port)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class WatchedReader(asyncio.StreamReader):
    """A stream reader that calls ``on_input`` when bytes, the end or an error arrive."""

    on_input: Callable[[], None] | None = None
    _buffer: bytearray  # StreamReader's own: bytes received and not read yet

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        super().feed_data(data)
        self._poke()

    def feed_eof(self) -> None:
        super().feed_eof()
        self._poke()

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        self._poke()

    def _poke(self) -> None:
        callback, self.on_input = self.on_input, None
        if callback is not None:
            callback()

    @property
    def quiet(self) -> bool:
        """Nothing arrived: no bytes, no end, no error."""
        return not self._buffer and not self.at_eof() and self.exception() is None


@dataclass(frozen=True, slots=True)
class PoolLimits:
    # Connections carrying a request at once; more requests wait. As many as the relay's
    # default per-host stream cap leaves in flight at c256: loopback connections are cheap
    # (a descriptor and a few KiB each), a queue in front of the local server is not.
    max_connections: int = 256
    # Connections kept open between requests; None: as many as max_connections (fewer
    # would make a busy connector open a new connection for a good part of its requests).
    max_idle: int | None = None
    idle_timeout: float = 4.0  # seconds an idle connection is kept (below common servers' 5 s)
    connect_timeout: float = 5.0
    wait_timeout: float = 30.0  # for a free connection when all are busy (then 503)

    def __post_init__(self) -> None:
        if self.max_connections < 1 or not 0 <= self.idle_cap <= self.max_connections:
            raise ValueError("the pool needs max_connections >= 1 and 0 <= max_idle <= it")

    @property
    def idle_cap(self) -> int:
        return self.max_connections if self.max_idle is None else self.max_idle


class _CountingChannel(SocketChannel):
    """A socket channel that counts what it read: a reused connection that failed before
    a single response byte is safe to retry."""

    bytes_read = 0

    async def read(self, max_bytes: int = READ_SIZE) -> bytes:
        data = await super().read(max_bytes)
        self.bytes_read += len(data)
        return data


class UpstreamConnection:
    """One connection to the local server and its HTTP/1.1 state."""

    def __init__(
        self, reader: WatchedReader, writer: asyncio.StreamWriter, max_head_size: int
    ) -> None:
        self.reader = reader
        self.channel = _CountingChannel(reader, writer)
        self.http = HttpConnection(
            self.channel, client=True, max_head_size=max_head_size, read_size=UPSTREAM_READ_SIZE
        )
        self.reused = False  # it served an earlier request
        self.leased = False  # it holds a pool slot
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        return self.channel.writer.is_closing()

    @property
    def received_nothing(self) -> bool:
        return self.channel.bytes_read == 0

    def park(self, idle_timeout: float, gone: Callable[[UpstreamConnection], None]) -> None:
        """Idle from now on: retire it (``gone``) when the server closes or writes, or when
        ``idle_timeout`` passes."""
        self.channel.bytes_read = 0

        def retire() -> None:
            self._stop_watching()
            gone(self)

        if not self.reader.quiet:
            asyncio.get_running_loop().call_soon(retire)
            return
        self.reader.on_input = retire
        self._expiry = asyncio.get_running_loop().call_later(idle_timeout, retire)

    def _stop_watching(self) -> None:
        self.reader.on_input = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def unpark(self) -> bool:
        """Take it out of the idle state; False if it must not be used any more."""
        self._stop_watching()
        return self.reader.quiet and not self.closed

    def close(self) -> None:
        self._stop_watching()
        self.channel.writer.close()

    def abort(self) -> None:
        self._stop_watching()
        self.channel.reset()


class UpstreamPool:
    """Keep-alive connections to the local server, at most ``max_connections`` in use."""

    def __init__(
        self,
        target: UpstreamTarget,
        limits: PoolLimits | None = None,
        *,
        max_head_size: int = DEFAULT_MAX_RESPONSE_HEAD,
    ) -> None:
        self.target = target
        self.limits = limits or PoolLimits()
        self._max_head = max_head_size
        self._slots = asyncio.Semaphore(self.limits.max_connections)
        self._idle: list[UpstreamConnection] = []  # most recently used last
        self._closed = False
        self.in_use = 0
        self.opened = 0  # connections opened since start
        self.reuses = 0  # requests that went out on a kept-alive connection

    @property
    def idle(self) -> int:
        return len(self._idle)

    def stats(self) -> dict[str, int]:
        return {
            "in_use": self.in_use,
            "idle": self.idle,
            "opened": self.opened,
            "reuses": self.reuses,
            "max_connections": self.limits.max_connections,
        }

    async def acquire(self, *, fresh: bool = False) -> UpstreamConnection:
        """A connection ready for a request: the most recently used idle one, or a new one
        (always new with ``fresh``). Raises ForwardError (502 or 503)."""
        if self._closed:
            raise busy("the connector is stopping")
        try:
            if self._slots.locked():  # all busy: wait, for so long
                async with asyncio.timeout(self.limits.wait_timeout):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()  # free: no wait, no timer
        except TimeoutError:
            raise busy(
                f"all {self.limits.max_connections} connections to the local server are busy"
            ) from None
        try:
            connection = await self._take_idle() if not fresh else None
            if connection is None:
                connection = await self._open()
        except BaseException:
            self._slots.release()
            raise
        connection.leased = True
        self.in_use += 1
        return connection

    async def _take_idle(self) -> UpstreamConnection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.unpark():
                connection.reused = True
                self.reuses += 1
                return connection
            connection.close()
        return None

    async def _open(self) -> UpstreamConnection:
        where = self.target.url
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                reader, writer = await self.target.open()
        except TimeoutError:
            raise bad_gateway(
                f"cannot connect to the local server at {where}: "
                f"no answer within {self.limits.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise bad_gateway(
                f"cannot connect to the local server at {where}: {describe_os_error(exc)}"
            ) from None
        self.opened += 1
        return UpstreamConnection(reader, writer, self._max_head)

    def _return_slot(self, connection: UpstreamConnection) -> bool:
        if not connection.leased:
            return False
        connection.leased = False
        self.in_use -= 1
        self._slots.release()
        return True

    def release(self, connection: UpstreamConnection) -> None:
        """The exchange is over: keep the connection if HTTP allows it, else close it."""
        if not self._return_slot(connection):
            return
        if (
            self._closed
            or self.limits.idle_cap == 0
            or connection.closed
            or not connection.http.can_reuse
            or connection.http.trailing_data()  # bytes nobody asked for: not to be trusted
        ):
            connection.close()
            return
        connection.http.start_next_cycle()
        if len(self._idle) >= self.limits.idle_cap:
            self._idle.pop(0).close()  # the least recently used
        connection.park(self.limits.idle_timeout, self._gone)
        self._idle.append(connection)

    def discard(self, connection: UpstreamConnection) -> None:
        """The exchange broke: drop the connection at once."""
        self._return_slot(connection)
        connection.abort()

    def detach(self, connection: UpstreamConnection) -> None:
        """The connection switched protocols: the caller owns (and closes) it now."""
        self._return_slot(connection)

    def _gone(self, connection: UpstreamConnection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        connection.close()

    async def close(self) -> None:
        """Close the idle connections; ones in use close when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        await asyncio.sleep(0)  # let the cancelled watchers finish


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, FileNotFoundError):
        return "no such socket"
    return exc.strerror or str(exc) or type(exc).__name__

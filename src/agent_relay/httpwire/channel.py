"""The byte-stream interface HTTP runs over, and the one socket adapter (HTTP's, and a
yamux session's over a plain socket)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from ..mux.session import ByteStream

READ_SIZE = 64 * 1024


class ByteChannel(ByteStream, Protocol):
    """A :class:`~agent_relay.mux.session.ByteStream` with a read size and a reset; a
    yamux stream is one."""

    async def read(self, max_bytes: int = ...) -> bytes:
        """At least one byte, or ``b""`` at end of stream."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None:
        """No more writes from our side (half-close where the channel has it)."""
        ...

    def reset(self) -> None:
        """Abort both directions at once."""
        ...


class WatchedReader(asyncio.StreamReader):
    """A StreamReader that tells one callback when the peer is gone (end of stream or
    connection lost): what a handler waiting on something else needs, without a task
    reading the socket for it. Bytes that arrive meanwhile stay buffered."""

    _on_close: Callable[[], None] | None = None
    peer_gone = False

    def feed_eof(self) -> None:
        super().feed_eof()
        self._peer_left()

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        self._peer_left()

    def _peer_left(self) -> None:
        self.peer_gone = True
        callback, self._on_close = self._on_close, None
        if callback is not None:
            callback()


class SocketChannel:
    """A TCP or Unix socket from asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def on_close(self, callback: Callable[[], None] | None) -> bool:
        """Call ``callback`` once when the peer leaves (now, if it has); ``None`` takes it
        back. False when the reader cannot tell (not a :class:`WatchedReader`)."""
        reader = self.reader
        if not isinstance(reader, WatchedReader):
            return False
        if callback is not None and reader.peer_gone:
            callback()
        else:
            reader._on_close = callback
        return True

    async def read(self, max_bytes: int = READ_SIZE) -> bytes:
        try:
            return await self.reader.read(max_bytes)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        if self.writer.is_closing():
            return
        if self.writer.can_write_eof():
            with contextlib.suppress(OSError):
                self.writer.write_eof()
        else:
            self.writer.close()

    def reset(self) -> None:
        self.writer.transport.abort()

    async def aclose(self) -> None:
        """Close the socket entirely."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class SocketByteStream(SocketChannel):
    """The socket adapter for a yamux session: larger reads (a frame's worth), and its
    ``close`` ends the connection (the session is done with it)."""

    async def read(self, max_bytes: int = 256 * 1024) -> bytes:
        return await super().read(max_bytes)

    async def close(self) -> None:
        if not self.writer.is_closing():
            await self.aclose()

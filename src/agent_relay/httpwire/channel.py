"""The byte-stream interface HTTP runs over, and the one socket adapter (HTTP's, and a
yamux session's over a plain socket)."""

from __future__ import annotations

import asyncio
import contextlib
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


class SocketChannel:
    """A TCP or Unix socket from asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

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

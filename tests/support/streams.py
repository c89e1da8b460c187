"""An in-memory byte-stream pair for the httpwire and mux-session unit tests: what one
end writes the other reads, in order; ``close`` is a half-close (the peer reads ``b""``
once the bytes before it are read), ``reset`` aborts both directions. Writes wait while
the peer has more than ``limit`` bytes unread, as a socket's send buffer would."""

from __future__ import annotations

import asyncio

from agent_relay.httpwire.channel import READ_SIZE


class _Pipe:
    """One direction."""

    def __init__(self, limit: int) -> None:
        self.buffer = bytearray()
        self.limit = limit
        self.eof = False
        self.broken = False
        self.changed = asyncio.Condition()

    async def write(self, data: bytes) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.buffer) < self.limit or self.broken)
            if self.broken or self.eof:
                raise ConnectionResetError("the stream is closed")
            self.buffer += data
            self.changed.notify_all()

    async def read(self, max_bytes: int) -> bytes:
        async with self.changed:
            await self.changed.wait_for(lambda: bool(self.buffer) or self.eof or self.broken)
            if self.broken:
                return b""
            data = bytes(self.buffer[:max_bytes])
            del self.buffer[:max_bytes]
            self.changed.notify_all()
            return data

    async def end(self, *, broken: bool = False) -> None:
        async with self.changed:
            self.eof = True
            self.broken = self.broken or broken
            self.changed.notify_all()


class MemoryStream:
    """One end of a :func:`memory_pair`; a ``ByteChannel`` and a mux ``ByteStream``."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self._in = incoming
        self._out = outgoing
        self.written: list[bytes] = []  # every write, for tests that count them

    async def read(self, max_bytes: int = READ_SIZE) -> bytes:
        return await self._in.read(max_bytes)

    async def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        await self._out.write(bytes(data))

    async def close(self) -> None:
        await self._out.end()

    def reset(self) -> None:
        loop = asyncio.get_running_loop()
        for pipe in (self._in, self._out):
            loop.create_task(pipe.end(broken=True))  # noqa: RUF006 - done in a moment


def memory_pair(limit: int = 256 * 1024) -> tuple[MemoryStream, MemoryStream]:
    """Two connected ends."""
    a_to_b, b_to_a = _Pipe(limit), _Pipe(limit)
    return MemoryStream(b_to_a, a_to_b), MemoryStream(a_to_b, b_to_a)

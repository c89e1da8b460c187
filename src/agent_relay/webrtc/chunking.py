"""The data channel's chunk framing, as the reference speaks it.

Each channel message carries one chunk: a header byte, then at most 61,440 payload bytes.
Bit 0 of the header says whether this is the last chunk of a message (0x07) or more follow
(0x06); the other bits are not checked on receive, as in the reference. Chunks of one
message are never interleaved with another's: the channel is ordered and each side has
one writer.
"""

from __future__ import annotations

from collections.abc import Iterator

from .limits import CHUNK_PAYLOAD

MORE = 0x06
LAST = 0x07


class ChunkError(ValueError):
    """A chunk or a reassembled message the peer should not have sent."""


def split_message(message: bytes, chunk_payload: int = CHUNK_PAYLOAD) -> Iterator[bytes]:
    """The chunks that carry ``message`` (an empty message is one empty last chunk)."""
    if not 0 < chunk_payload <= CHUNK_PAYLOAD:
        raise ValueError(f"chunk_payload must be in 1..{CHUNK_PAYLOAD}")
    view = memoryview(message)
    end = len(view)
    start = 0
    while True:
        stop = start + chunk_payload
        if stop >= end:
            yield bytes([LAST]) + view[start:end]
            return
        yield bytes([MORE]) + view[start:stop]
        start = stop


class Reassembler:
    """Joins chunks into messages, refusing any message over ``max_message`` bytes."""

    def __init__(self, max_message: int) -> None:
        self._max = max_message
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def pending(self) -> int:
        """Bytes of a message begun but not finished."""
        return self._size

    def feed(self, chunk: bytes) -> bytes | None:
        """The complete message ``chunk`` ends, or None while more are to come."""
        if not chunk:
            raise ChunkError("empty chunk (no header byte)")
        if len(chunk) - 1 > CHUNK_PAYLOAD:
            raise ChunkError(f"chunk over {CHUNK_PAYLOAD} payload bytes")
        self._size += len(chunk) - 1
        if self._size > self._max:
            raise ChunkError(f"message over {self._max} bytes")
        self._parts.append(chunk[1:])
        if not chunk[0] & 0x01:
            return None
        message = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return message

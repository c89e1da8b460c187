"""A request body read whole before it is forwarded (its hash is part of the signed
string): kept in memory up to a limit, spilled to a temporary file up to a larger one,
refused beyond (413)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator

from . import wire
from .errors import TrustError

READ_SIZE = 64 * 1024


class BodyBuffer:
    def __init__(self, memory_limit: int, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = tempfile.SpooledTemporaryFile(max_size=memory_limit)  # noqa: SIM115

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TrustError(413, "too_large", f"request body larger than {self.limit} bytes")
        self._hash.update(data)
        self._file.write(data)

    @property
    def h_body(self) -> str:
        return wire.b64encode(self._hash.digest())

    def chunks(self) -> Iterator[bytes]:
        self._file.seek(0)
        while chunk := self._file.read(READ_SIZE):
            yield chunk

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def close(self) -> None:
        self._file.close()

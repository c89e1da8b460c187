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
    """Most relayed requests have no body: the hash and the spool are made only for the
    first bytes."""

    def __init__(self, memory_limit: int, limit: int) -> None:
        self.limit = limit
        self.memory_limit = memory_limit
        self.size = 0
        self._hash: hashlib._Hash | None = None
        self._file: tempfile.SpooledTemporaryFile[bytes] | None = None

    def add(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            raise TrustError(413, "too_large", f"request body larger than {self.limit} bytes")
        if self._file is None:
            self._hash = hashlib.sha256()
            self._file = tempfile.SpooledTemporaryFile(max_size=self.memory_limit)  # noqa: SIM115
        assert self._hash is not None
        self._hash.update(data)
        self._file.write(data)

    @property
    def h_body(self) -> str:
        if self._hash is None:
            return wire.EMPTY_BODY_HASH
        return wire.b64encode(self._hash.digest())

    def chunks(self) -> Iterator[bytes]:
        if self._file is None:
            return
        self._file.seek(0)
        while chunk := self._file.read(READ_SIZE):
            yield chunk

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

"""Secrets on disk: written atomically with mode 0600, never readable by others."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_secret_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; the file is 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_secret_file(path: Path) -> bytes:
    """Read a secret, refusing one that other users could read or change."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise PermissionError(
            f"{path} is accessible by other users (mode {mode & 0o777:o}); run: chmod 600 {path}"
        )
    return path.read_bytes()

"""Who this host is to the relay: a stable machine id kept in the data directory (made
once, then reused, so the relay keeps one host record across restarts) and a name."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import uuid
from pathlib import Path

from ..keyfile import write_secret_file

MACHINE_ID_FILE = "machine-id"
MAX_MACHINE_ID = 255  # the relay refuses longer values


def load_machine_id(data_dir: Path) -> str:
    """The machine id stored in ``data_dir``, created on first use.

    Creation is atomic and exclusive: two connectors starting at once in the same data
    dir end up with the same id.
    """
    path = data_dir / MACHINE_ID_FILE
    if not path.exists():
        candidate = path.with_name(f".{MACHINE_ID_FILE}.{secrets.token_hex(8)}.new")
        write_secret_file(candidate, f"{uuid.uuid4()}\n".encode())
        try:
            os.link(candidate, path)  # fails if another process created it meanwhile
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
    value = path.read_text("utf-8").strip()
    if not value or len(value) > MAX_MACHINE_ID or not value.isprintable() or " " in value:
        raise ValueError(f"{path} does not hold a valid machine id; remove it to make a new one")
    return value


def default_name() -> str:
    return socket.gethostname() or "agent-relay-host"

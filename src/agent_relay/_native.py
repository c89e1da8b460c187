"""The one place that picks the compiled core or the pure-Python reference.

The compiled core is the optional extension module ``agent_relay_core`` (``native/``, Rust
with PyO3, built by ``scripts/setup.sh`` when cargo is on the PATH and installed in the
image). It does the per-request byte work of ``httpwire/codec.py`` (head parsing and
writing) and of ``mux/connection.py`` (frame splitting) with exactly the pure modules'
results; those stay the reference and the fallback. ``AGENT_RELAY_PURE_PYTHON=1`` forces
the pure modules; an extension of another version than this checkout's is not used.
"""

from __future__ import annotations

import importlib
import os
from typing import Final, Protocol, cast

PURE_ENV: Final = "AGENT_RELAY_PURE_PYTHON"
MODULE: Final = "agent_relay_core"
VERSION: Final = "0.1.0"  # native/Cargo.toml's; a different build is stale

Fields = list[tuple[bytes, bytes]]


class Core(Protocol):
    """What the extension offers (native/src/lib.rs). Errors: ValueError(message, status)."""

    __version__: str

    def parse_request_head(
        self, head: bytes, /
    ) -> tuple[bytes, bytes, bytes, Fields, int, int | None]: ...

    def parse_response_head(
        self, head: bytes, /
    ) -> tuple[bytes, int, bytes, Fields, int, int | None]: ...

    def parse_fields(self, block: bytes, /) -> tuple[Fields, int, int | None]: ...

    def write_head(self, first_line: bytes, headers: object, /) -> bytes: ...

    def split_frames(
        self, data: bytes, pos: int, /
    ) -> tuple[list[tuple[int, int, int, int, int, bytes | None]], int]: ...


def _load() -> tuple[Core | None, str]:
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None, f"pure Python ({PURE_ENV}=1)"
    try:
        module = importlib.import_module(MODULE)
    except ImportError:
        return None, "pure Python (extension not built)"
    version = getattr(module, "__version__", "?")
    if version != VERSION:
        return None, f"pure Python ({MODULE} {version} is stale: this checkout needs {VERSION})"
    return cast(Core, module), f"compiled ({MODULE} {version})"


core, description = _load()


def installed() -> Core | None:
    """The extension when it is importable and current, even if pure Python is forced
    (for the differential tests)."""
    try:
        module = importlib.import_module(MODULE)
    except ImportError:
        return None
    return cast(Core, module) if getattr(module, "__version__", None) == VERSION else None

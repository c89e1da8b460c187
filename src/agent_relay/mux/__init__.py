"""Yamux (HashiCorp's spec): a sans-IO core and a thin asyncio session/stream API."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import MuxConfig
    from .connection import Connection
    from .errors import (
        GoAwayError,
        MuxError,
        PingTimeoutError,
        SessionClosedError,
        StreamClosedError,
        StreamIdsExhaustedError,
        StreamResetError,
        TooManyStreamsError,
    )
    from .frame import GoAwayCode
    from .session import ByteStream, MuxSession, MuxStream

# Loaded on first use, so importing one submodule does not load the whole package.
_EXPORTS = {
    "ByteStream": ".session",
    "Connection": ".connection",
    "GoAwayCode": ".frame",
    "GoAwayError": ".errors",
    "MuxConfig": ".config",
    "MuxError": ".errors",
    "MuxSession": ".session",
    "MuxStream": ".session",
    "PingTimeoutError": ".errors",
    "SessionClosedError": ".errors",
    "StreamClosedError": ".errors",
    "StreamIdsExhaustedError": ".errors",
    "StreamResetError": ".errors",
    "TooManyStreamsError": ".errors",
}

__all__ = [
    "ByteStream",
    "Connection",
    "GoAwayCode",
    "GoAwayError",
    "MuxConfig",
    "MuxError",
    "MuxSession",
    "MuxStream",
    "PingTimeoutError",
    "SessionClosedError",
    "StreamClosedError",
    "StreamIdsExhaustedError",
    "StreamResetError",
    "TooManyStreamsError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""Yamux (HashiCorp's spec): a sans-IO core and a thin asyncio session/stream API."""

from .budget import BufferAccount, ReceiveBudget
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

__all__ = [
    "BufferAccount",
    "ByteStream",
    "Connection",
    "GoAwayCode",
    "GoAwayError",
    "MuxConfig",
    "MuxError",
    "MuxSession",
    "MuxStream",
    "PingTimeoutError",
    "ReceiveBudget",
    "SessionClosedError",
    "StreamClosedError",
    "StreamIdsExhaustedError",
    "StreamResetError",
    "TooManyStreamsError",
]

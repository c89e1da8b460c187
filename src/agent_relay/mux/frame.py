"""Yamux frame header: 12 bytes, big-endian, as in HashiCorp's spec."""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

VERSION: Final = 0
HEADER_SIZE: Final = 12
INITIAL_WINDOW: Final = 256 * 1024
MAX_U32: Final = 0xFFFF_FFFF

# Precompiled: version, type, flags, stream id, length.
HEADER_STRUCT: Final = struct.Struct(">BBHII")
_HEADER = HEADER_STRUCT


class FrameType(IntEnum):
    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class Flag(IntFlag):
    NONE = 0
    SYN = 1
    ACK = 2
    FIN = 4
    RST = 8


ALL_FLAGS: Final = int(Flag.SYN | Flag.ACK | Flag.FIN | Flag.RST)


class GoAwayCode(IntEnum):
    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class FrameError(Exception):
    """A header that no yamux peer may send."""


class Header(NamedTuple):
    type: FrameType
    flags: int
    stream_id: int
    length: int


def encode_header(frame_type: int, flags: int, stream_id: int, length: int) -> bytes:
    return _HEADER.pack(VERSION, frame_type, flags, stream_id, length)


def decode_header(data: bytes | bytearray | memoryview, offset: int = 0) -> Header:
    """Decode and validate the 12 bytes at ``offset``; raise FrameError if invalid.

    Checks here are the ones that need no session state: version, type, flags, and the
    stream id rules of the session-level frame types.
    """
    version, frame_type, flags, stream_id, length = _HEADER.unpack_from(data, offset)
    if version != VERSION:
        raise FrameError(f"unsupported version {version}")
    if frame_type > FrameType.GO_AWAY:
        raise FrameError(f"unknown frame type {frame_type}")
    if flags & ~ALL_FLAGS:
        raise FrameError(f"unknown flags {flags:#06x}")
    kind = FrameType(frame_type)
    if kind is FrameType.PING:
        if stream_id != 0:
            raise FrameError("ping on a stream")
        if flags not in (Flag.SYN, Flag.ACK):
            raise FrameError(f"ping with flags {flags:#x}")
    elif kind is FrameType.GO_AWAY:
        if stream_id != 0:
            raise FrameError("go away on a stream")
        if flags:
            raise FrameError(f"go away with flags {flags:#x}")
    elif stream_id == 0:
        raise FrameError(f"{kind.name.lower()} frame on stream 0")
    return Header(kind, flags, stream_id, length)

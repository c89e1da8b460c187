from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_relay.mux.frame import (
    HEADER_SIZE,
    Flag,
    FrameError,
    FrameType,
    decode_header,
    encode_header,
)


@given(
    frame_type=st.sampled_from([FrameType.DATA, FrameType.WINDOW_UPDATE]),
    flags=st.integers(0, 15),
    stream_id=st.integers(1, 0xFFFF_FFFF),
    length=st.integers(0, 0xFFFF_FFFF),
)
def test_stream_frames_round_trip(
    frame_type: FrameType, flags: int, stream_id: int, length: int
) -> None:
    raw = encode_header(frame_type, flags, stream_id, length)
    assert len(raw) == HEADER_SIZE
    header = decode_header(raw)
    assert (header.type, header.flags, header.stream_id, header.length) == (
        frame_type,
        flags,
        stream_id,
        length,
    )


@pytest.mark.parametrize("flags", [Flag.SYN, Flag.ACK])
def test_ping_round_trip(flags: Flag) -> None:
    header = decode_header(encode_header(FrameType.PING, flags, 0, 0xDEADBEEF))
    assert header.type is FrameType.PING
    assert header.length == 0xDEADBEEF


def test_header_is_big_endian() -> None:
    raw = encode_header(FrameType.WINDOW_UPDATE, Flag.SYN | Flag.ACK, 0x01020304, 0x0A0B0C0D)
    assert raw == bytes([0, 1, 0, 3, 1, 2, 3, 4, 10, 11, 12, 13])


def test_decode_at_offset() -> None:
    raw = b"xx" + encode_header(FrameType.GO_AWAY, 0, 0, 2)
    assert decode_header(raw, 2).length == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (struct.pack(">BBHII", 1, 0, 0, 1, 0), "version"),
        (struct.pack(">BBHII", 0, 4, 0, 1, 0), "unknown frame type"),
        (struct.pack(">BBHII", 0, 0, 0x10, 1, 0), "unknown flags"),
        (struct.pack(">BBHII", 0, 2, 1, 5, 0), "ping on a stream"),
        (struct.pack(">BBHII", 0, 2, 0, 0, 0), "ping with flags"),
        (struct.pack(">BBHII", 0, 2, 3, 0, 0), "ping with flags"),
        (struct.pack(">BBHII", 0, 3, 0, 7, 0), "go away on a stream"),
        (struct.pack(">BBHII", 0, 3, 1, 0, 0), "go away with flags"),
        (struct.pack(">BBHII", 0, 0, 0, 0, 5), "data frame on stream 0"),
        (struct.pack(">BBHII", 0, 1, 1, 0, 5), "window_update frame on stream 0"),
    ],
)
def test_invalid_headers(raw: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_header(raw)


@given(st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE))
def test_any_twelve_bytes_decode_or_raise_frame_error(raw: bytes) -> None:
    try:
        header = decode_header(raw)
    except FrameError:
        return
    assert encode_header(header.type, header.flags, header.stream_id, header.length) == raw

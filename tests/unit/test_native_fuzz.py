"""The compiled core (native/, ``agent_relay_core``) against the pure-Python reference on
the same inputs: head parsing (accept/reject, status, message and parsed result), head
writing, trailer fields, and whole connections fed in random pieces, for HTTP/1.1
(httpwire/codec.py) and yamux (mux/connection.py: the same events and the same bytes to
send for any split of the same frames).

Skipped only where the extension is not built and cannot be: with ``CI`` set and cargo on
the PATH, ``scripts/setup.sh`` builds it, so a missing extension is a failure there.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay import _native
from agent_relay.httpwire import codec
from agent_relay.mux import connection as mux
from agent_relay.mux.config import MuxConfig
from agent_relay.mux.events import Event, StreamOpened
from tests.support.http_fuzz import drive_codec, pieces, request_bytes, response_bytes

CORE = _native.installed()
EXPECTED = bool(os.environ.get("CI")) and shutil.which("cargo") is not None

pytestmark = pytest.mark.skipif(
    CORE is None and not EXPECTED,
    reason="the compiled core is not built (no cargo): pure Python only",
)

_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_compiled_core_is_built_and_current() -> None:
    assert CORE is not None, "agent_relay_core is missing or stale: run scripts/setup.sh"
    assert codec.COMPILED is not None
    assert mux._split_frames is not None
    if os.environ.get(_native.PURE_ENV, "") in ("", "0"):
        assert _native.description == f"compiled (agent_relay_core {_native.VERSION})"


def _compiled() -> tuple[
    Callable[[bytes], codec.RequestHead],
    Callable[[bytes], codec.ResponseHead],
    Callable[[bytes], codec.Headers],
    Callable[[bytes, list[tuple[bytes, bytes]]], bytes],
]:
    assert codec.COMPILED is not None, "agent_relay_core is missing or stale"
    return codec.COMPILED


def _outcome(parse: Callable[[bytes], tuple[object, ...]], head: bytes) -> tuple[object, ...]:
    try:
        *parts, framing = parse(head)
    except codec.ProtocolError as exc:
        return ("error", type(exc).__name__, str(exc), exc.status)
    assert isinstance(framing, codec._Framing)
    facts = (
        framing.chunked,
        framing.length,
        framing.close,
        framing.expect_continue,
        framing.upgrade,
    )
    return ("ok", *parts, facts)


def _head_of(message: bytes) -> bytes:
    """What the connection hands the head parser: the lines before the first empty one."""
    buf = bytearray(message)
    head = codec._take_head(buf)
    return message if head is None else head


# ----------------------------------------------------------------- heads


@_SETTINGS
@given(message=request_bytes())
def test_request_heads_parse_the_same(message: bytes) -> None:
    head = _head_of(message)
    assert _outcome(_compiled()[0], head) == _outcome(codec.parse_request_head_pure, head)


@_SETTINGS
@given(message=response_bytes())
def test_response_heads_parse_the_same(message: bytes) -> None:
    head = _head_of(message)
    assert _outcome(_compiled()[1], head) == _outcome(codec.parse_response_head_pure, head)


_HEADISH = st.lists(
    st.sampled_from(
        [
            b"GET / HTTP/1.1",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.0 204",
            b"host: x",
            b"Content-Length: 5",
            b"content-length: 5 , 5",
            b"transfer-encoding: chunked",
            b"Transfer-Encoding: gzip",
            b"connection: keep-alive, Close",
            b"expect: 100-Continue",
            b"upgrade: websocket",
            b" folded",
            b"\tfolded",
            b"x:",
            b"x: a\x0bb",
            b"x: \xff\xfe",
            b"x: a\rb",
            b"\r",
            b"",
        ]
    )
    | st.binary(max_size=16),
    max_size=8,
)


@_SETTINGS
@given(lines=_HEADISH, ends=st.lists(st.sampled_from([b"\r\n", b"\n"]), min_size=8, max_size=8))
def test_arbitrary_heads_parse_the_same(lines: list[bytes], ends: list[bytes]) -> None:
    head = b"".join(line + end for line, end in zip(lines, ends, strict=False))
    request, response, fields, _ = _compiled()
    assert _outcome(request, head) == _outcome(codec.parse_request_head_pure, head)
    assert _outcome(response, head) == _outcome(codec.parse_response_head_pure, head)
    block = b"".join(line + b"\n" for line in lines)
    try:
        pure: object = codec.check_fields_pure(block)
    except codec.ProtocolError as exc:
        pure = ("error", str(exc), exc.status)
    try:
        compiled: object = fields(block)
    except codec.ProtocolError as exc:
        compiled = ("error", str(exc), exc.status)
    assert compiled == pure


_FIELD_BYTES = st.sampled_from([b"host", b"x", b"a b", b"v\r", b"\n", b"\x00", b"", b"\xff"])


@_SETTINGS
@given(
    first=st.sampled_from([b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"GET /\n HTTP/1.1\r\n"]),
    fields=st.lists(st.tuples(_FIELD_BYTES, _FIELD_BYTES | st.binary(max_size=6)), max_size=6),
)
def test_heads_are_written_the_same(first: bytes, fields: list[tuple[bytes, bytes]]) -> None:
    def written(write: Callable[[bytes, list[tuple[bytes, bytes]]], bytes]) -> object:
        try:
            return write(first, fields)
        except codec.LocalProtocolError as exc:
            return ("error", str(exc))

    assert written(_compiled()[3]) == written(codec.write_head_pure)


class _PureHttp(codec.Connection):
    _request_head = staticmethod(codec.parse_request_head_pure)
    _response_head = staticmethod(codec.parse_response_head_pure)
    _write_head = staticmethod(codec.write_head_pure)


class _CompiledHttp(codec.Connection):
    pass


if codec.COMPILED is not None:
    _CompiledHttp._request_head = staticmethod(codec.COMPILED[0])
    _CompiledHttp._response_head = staticmethod(codec.COMPILED[1])
    _CompiledHttp._write_head = staticmethod(codec.COMPILED[3])


@_SETTINGS
@given(data=st.data(), client=st.booleans(), eof=st.booleans())
def test_connections_read_the_same_in_any_pieces(
    data: st.DataObject, client: bool, eof: bool
) -> None:
    _compiled()
    message = data.draw(response_bytes() if client else request_bytes())
    chunks = data.draw(pieces(message))
    events = []
    for cls in (_PureHttp, _CompiledHttp):
        conn = cls(client=client)
        if client:
            conn.send_head(codec.Request(b"GET", b"/", [(b"host", b"x")]))
            conn.send_end()
        events.append(drive_codec(conn, chunks, eof))
    assert events[0] == events[1]


# ----------------------------------------------------------------- yamux


def _frame(kind: int, flags: int, stream_id: int, payload: bytes | int = b"") -> bytes:
    if isinstance(payload, int):  # a window update's delta, a ping's opaque, a code
        return struct.pack(">BBHII", 0, kind, flags, stream_id, payload)
    return struct.pack(">BBHII", 0, kind, flags, stream_id, len(payload)) + payload


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A peer's frames: mostly valid streams (SYN, data, window updates, FIN, RST), some
    pings and go-aways, now and then a broken header or raw bytes."""
    out = []
    for _ in range(draw(st.integers(0, 12))):
        sid = draw(st.sampled_from([1, 3, 5, 2, 0, 7]))
        choice = draw(st.integers(0, 9))
        flags = draw(st.sampled_from([0, 0, 1, 2, 4, 8, 1 | 4, 16]))
        if choice <= 4:
            out.append(_frame(0, flags, sid, draw(st.binary(max_size=40))))
        elif choice <= 6:
            out.append(_frame(1, flags, sid, draw(st.sampled_from([0, 1, 4096, 2**32 - 1]))))
        elif choice == 7:
            out.append(_frame(2, draw(st.sampled_from([1, 2, 3])), 0, draw(st.integers(0, 9))))
        elif choice == 8:
            out.append(_frame(3, 0, 0, draw(st.integers(0, 3))))
        else:
            out.append(draw(st.binary(max_size=14)))
    return b"".join(out)


class _PureMux(mux.Connection):
    _parse = mux.Connection._parse_pure


class _CompiledMux(mux.Connection):
    _parse = mux.Connection._parse_compiled


def _run_mux(cls: type[mux.Connection], client: bool, chunks: list[bytes]) -> list[object]:
    conn = cls(client=client, config=MuxConfig())
    out: list[object] = []
    for chunk in chunks:
        events: list[Event] = conn.receive_data(chunk)
        out.append([repr(e) for e in events])
        for event in events:  # accept what opens, as an application would
            if isinstance(event, StreamOpened):
                conn.accept_stream(event.stream_id)
        out.append(conn.data_to_send())
    out.append((conn.terminated, conn.num_streams, conn.remote_go_away))
    return out


@_SETTINGS
@given(data=st.data(), client=st.booleans())
def test_yamux_frames_split_the_same_in_any_pieces(data: st.DataObject, client: bool) -> None:
    _compiled()
    stream = data.draw(frames())
    chunks = data.draw(pieces(stream))
    assert _run_mux(_CompiledMux, client, chunks) == _run_mux(_PureMux, client, chunks)


@_SETTINGS
@given(stream=frames(), pos=st.integers(0, 30))
def test_split_frames_matches_the_header_struct(stream: bytes, pos: int) -> None:
    """Each tuple is the header as struct unpacks it, the payload the bytes after it."""
    assert CORE is not None, "agent_relay_core is missing or stale"
    pos = min(pos, len(stream))
    split, stop = CORE.split_frames(stream, pos)
    at = pos
    for version, kind, flags, stream_id, length, payload in split:
        assert (version, kind, flags, stream_id, length) == struct.unpack_from(">BBHII", stream, at)
        at += 12
        if version == 0 and kind == 0 and length:
            assert payload == stream[at : at + length]
            assert payload is not None
            at += len(payload)
        else:
            assert payload is None
    assert stop == at
    assert len(stream) - stop < 12 or (split and split[-1][5] is not None)

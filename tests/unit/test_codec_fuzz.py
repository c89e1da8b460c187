"""The hot path's HTTP/1.1 codec against h11 (the reference) on the same bytes: the same
accept/reject decision (and status) for heads, the same parsed method, target, status,
reason, headers and version, the same body bytes and message ends, fed in random pieces;
and heads the codec writes are framed the way h11 frames them."""

from __future__ import annotations

import itertools
from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay.httpwire import codec

MAX_HEAD = 4096

# ----------------------------------------------------------------- generators

_CRLF = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])
_METHODS = st.sampled_from(
    [b"GET", b"HEAD", b"POST", b"PUT", b"CONNECT", b"OPTIONS", b"get", b"GET", b"POST"]
)
_TARGETS = st.sampled_from([b"/", b"/a?b=1&c", b"*", b"http://x/y", b"/%20", b"/"])
_VERSIONS = st.sampled_from([b"1.1"] * 6 + [b"1.0", b"1.0", b"2.0", b"1.x", b"0.9"])
_NAMES = st.sampled_from(
    [
        b"host",
        b"Host",
        b"content-length",
        b"Content-Length",
        b"transfer-encoding",
        b"connection",
        b"upgrade",
        b"expect",
        b"x-a",
        b"X-B",
        b" x",
        b"x ",
        b"x\x00",
        b"",
        b"a@b",
        b"x-\x80",
    ]
)
_VALUES = st.sampled_from(
    [
        b"x",
        b"",
        b"5",
        b"05",
        b"5, 5",
        b"5,6",
        b"-1",
        b"1" * 21,
        b"abc",
        b"0",
        b"chunked",
        b"Chunked",
        b"gzip, chunked",
        b"chunked, chunked",
        b"close",
        b"keep-alive",
        b"Upgrade",
        b"close, upgrade",
        b"websocket",
        b"100-continue",
        b"a\tb",
        b"a  b ",
        b" lead",
        b"\x01ctl",
        b"del\x7f",
        b"obs\x80\xff",
        b"nul\x00",
        b"cr\rx",
        b"v\x0bt",
    ]
)
_RAW = st.binary(max_size=12)


_GOOD = {
    b"connection": [b"close", b"keep-alive", b"Upgrade", b"close, upgrade", b"x-a"],
    b"upgrade": [b"websocket", b""],
    b"expect": [b"100-continue", b"100-Continue", b"other"],
    b"x-a": [b"x", b"", b"a\tb", b"a  b", b"\x01ctl", b"obs\x80\xff", b"del\x7f"],
    b"X-B": [b"1", b"two words"],
}
_GOOD_FIELDS = st.sampled_from([(k, v) for k, vs in _GOOD.items() for v in vs])


@st.composite
def header_lines(draw: st.DrawFn, host: bool = True) -> bytes:
    """Mostly well-formed lines (a Host among them); sometimes one odd line."""
    lines = [b"Host: h"] if host and draw(st.integers(0, 9)) else []
    for _ in range(draw(st.integers(0, 4))):
        name, value = draw(_GOOD_FIELDS)
        sep = draw(st.sampled_from([b": ", b":", b":\t", b": "]))
        lines.append(name + sep + value + draw(st.sampled_from([b"", b"", b" ", b"\t"])))
    if draw(st.integers(0, 3)) == 0:
        kind = draw(st.integers(0, 3))
        if kind == 0:
            line = b" folded" if draw(st.booleans()) else b"\tfolded more"
        elif kind == 1:
            line = draw(_RAW)
        else:
            sep = draw(st.sampled_from([b": ", b" : ", b":"]))
            line = draw(_NAMES) + sep + draw(_VALUES)
        lines.insert(draw(st.integers(0, len(lines))), line)
    return b"".join(line + draw(_CRLF) for line in lines)


@st.composite
def framed_body(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Framing header lines and a body to match (sometimes not): by length, chunked
    (sometimes broken), both, or neither."""
    data = draw(st.binary(max_size=40))
    kind = draw(st.sampled_from(["length", "length", "chunked", "chunked", "both", "none"]))
    if kind == "none":
        return b"", data if draw(st.booleans()) else b""
    if kind == "length":
        length = draw(
            st.sampled_from(
                [b"%d" % len(data)] * 6
                + [b"0%d" % len(data), b"%d, %d" % ((len(data),) * 2), b"%d" % (len(data) + 3)]
            )
        )
        return b"Content-Length: " + length + draw(_CRLF), data
    out = b""
    rest = data
    while rest:
        size = draw(st.integers(1, len(rest)))
        piece, rest = rest[:size], rest[size:]
        ext = draw(st.sampled_from([b"", b"", b"", b";a=b", b" ", b";x\r", b"x"]))
        count = b"%x" % size if draw(st.integers(0, 19)) else draw(_RAW)
        end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\r\n", b"\n"]))
        out += count + ext + b"\r\n" + piece + end
    out += b"0\r\n"
    if draw(st.booleans()):
        out += draw(header_lines(host=False))
    out += draw(_CRLF)
    coding = draw(
        st.sampled_from([b"chunked"] * 6 + [b"Chunked", b"gzip, chunked", b"chunked, chunked"])
    )
    head = b"Transfer-Encoding: " + coding + draw(_CRLF)
    if kind == "both":
        head += b"Content-Length: 3" + draw(_CRLF)
    return head, out


@st.composite
def request_bytes(draw: st.DrawFn) -> bytes:
    line = draw(_METHODS) + b" " + draw(_TARGETS) + b" HTTP/" + draw(_VERSIONS)
    if draw(st.integers(0, 9)) == 0:
        line = draw(
            st.sampled_from(
                [
                    b"",
                    b" GET / HTTP/1.1",
                    b"GET /  HTTP/1.1",
                    b"\x00",
                    b"G T / HTTP/1.1",
                    b"GET /\x7f HTTP/1.1",
                    b"GET /\x80 HTTP/1.1",
                    b"GET  HTTP/1.1",
                ]
            )
        )
    framing, body = draw(framed_body())
    message = line + draw(_CRLF) + draw(header_lines()) + framing + draw(_CRLF) + body
    return _maybe_mutate(draw, message)


@st.composite
def response_bytes(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([b"200", b"204", b"304", b"101", b"100", b"404", b"099"]))
    if draw(st.integers(0, 19)) == 0:
        status = draw(st.sampled_from([b"1000", b"20", b"abc", b"050"]))
    reason = draw(
        st.sampled_from([b" OK"] * 6 + [b"", b" ", b" Not\tFound", b" \x80", b" x\x00", b" a\rb"])
    )
    line = b"HTTP/" + draw(_VERSIONS) + b" " + status + reason
    framing, body = draw(framed_body())
    message = line + draw(_CRLF) + draw(header_lines(host=False)) + framing + draw(_CRLF) + body
    if status == b"100" and draw(st.booleans()):
        message += b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    return _maybe_mutate(draw, message)


def _maybe_mutate(draw: st.DrawFn, message: bytes) -> bytes:
    if message and draw(st.integers(0, 5)) == 0:
        where = draw(st.integers(0, len(message) - 1))
        op = draw(st.integers(0, 2))
        byte = bytes([draw(st.integers(0, 255))])
        if op == 0:
            message = message[:where] + byte + message[where + 1 :]
        elif op == 1:
            message = message[:where] + byte + message[where:]
        else:
            message = message[:where] + message[where + 1 :]
    if draw(st.integers(0, 5)) == 0:
        message += b"GET /next HTTP/1.1\r\nhost: x\r\n\r\n"  # pipelined
    return message


@st.composite
def pieces(draw: st.DrawFn, message: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(message)), max_size=6)))
    bounds = [0, *cuts, len(message)]
    return [message[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# ----------------------------------------------------------------- drivers


def _h11_event(event: Any) -> tuple[object, ...]:
    if isinstance(event, h11.Request):
        return ("request", event.method, event.target, list(event.headers), event.http_version)
    if isinstance(event, h11.InformationalResponse | h11.Response):
        kind = "info" if isinstance(event, h11.InformationalResponse) else "response"
        return (
            kind,
            event.status_code,
            bytes(event.reason),
            list(event.headers),
            event.http_version,
        )
    if isinstance(event, h11.Data):
        return ("data", bytes(event.data))
    if isinstance(event, h11.EndOfMessage):
        return ("end",)
    assert isinstance(event, h11.ConnectionClosed)
    return ("closed",)


def _codec_event(event: object) -> tuple[object, ...]:
    if isinstance(event, codec.Request):
        return ("request", event.method, event.target, event.headers, event.http_version)
    if isinstance(event, codec.Response):
        kind = "info" if isinstance(event, codec.InformationalResponse) else "response"
        return (kind, event.status_code, event.reason, event.headers, event.http_version)
    if isinstance(event, codec.Data):
        return ("data", event.data)
    if isinstance(event, codec.EndOfMessage):
        return ("end",)
    assert isinstance(event, codec.ConnectionClosed)
    return ("closed",)


def _merged(events: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Body pieces joined: the codec coalesces chunks, h11 hands each on."""
    out: list[tuple[object, ...]] = []
    for event in events:
        if event[0] == "data" and out and out[-1][0] == "data":
            before, more = out[-1][1], event[1]
            assert isinstance(before, bytes)
            assert isinstance(more, bytes)
            out[-1] = ("data", before + more)
        elif event != ("data", b""):
            out.append(event)
    return out


def drive_h11(conn: h11.Connection, chunks: list[bytes], eof: bool) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    feed = iter(chunks)
    ended = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            out.append(("error", exc.error_status_hint))
            return _merged(out)
        if event is h11.NEED_DATA:
            piece = next(feed, None)
            if piece is not None:
                conn.receive_data(piece)
                continue
            if eof and not ended:
                ended = True
                conn.receive_data(b"")
                continue
            out.append(("need",))
            return _merged(out)
        if event is h11.PAUSED:
            out.append(("paused",))
            return _merged(out)
        out.append(_h11_event(event))
        if isinstance(event, h11.ConnectionClosed):
            return _merged(out)


def drive_codec(conn: codec.Connection, chunks: list[bytes], eof: bool) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    feed = iter(chunks)
    ended = False
    while True:
        try:
            event = conn.next_event()
        except codec.ProtocolError as exc:
            out.append(("error", exc.status))
            return _merged(out)
        if event is codec.NEED_DATA:
            piece = next(feed, None)
            if piece is not None:
                conn.receive_data(piece)
                continue
            if eof and not ended:
                ended = True
                conn.receive_data(b"")
                continue
            out.append(("need",))
            return _merged(out)
        if event is codec.PAUSED:
            out.append(("paused",))
            return _merged(out)
        out.append(_codec_event(event))
        if isinstance(event, codec.ConnectionClosed):
            return _merged(out)


_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(data=st.data(), eof=st.booleans())
def test_requests_parse_as_h11_parses_them(data: st.DataObject, eof: bool) -> None:
    message = data.draw(request_bytes())
    chunks = data.draw(pieces(message))
    reference = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    ours = codec.Connection(client=False, max_head_size=MAX_HEAD)
    expected = drive_h11(reference, chunks, eof)
    assert drive_codec(ours, chunks, eof) == expected
    if expected[-1][0] != "error":
        assert ours.they_are_waiting_for_100_continue == reference.they_are_waiting_for_100_continue
        assert ours.trailing_data == reference.trailing_data[0]


@_SETTINGS
@given(
    data=st.data(),
    eof=st.booleans(),
    method=st.sampled_from([b"GET", b"HEAD", b"POST", b"CONNECT"]),
    upgrade=st.booleans(),
)
def test_responses_parse_as_h11_parses_them(
    data: st.DataObject, eof: bool, method: bytes, upgrade: bool
) -> None:
    message = data.draw(response_bytes())
    chunks = data.draw(pieces(message))
    headers = [(b"host", b"x")] + (
        [(b"connection", b"upgrade"), (b"upgrade", b"ws")] if upgrade else []
    )
    reference = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    reference.send(h11.Request(method=method, target=b"/", headers=headers))
    reference.send(h11.EndOfMessage())
    ours = codec.Connection(client=True, max_head_size=MAX_HEAD)
    ours.send_head(codec.Request(method, b"/", headers))
    ours.send_end()
    expected = drive_h11(reference, chunks, eof)
    assert drive_codec(ours, chunks, eof) == expected
    if expected[-1][0] != "error":
        assert ours.can_reuse == (
            reference.our_state is h11.DONE and reference.their_state is h11.DONE
        )
        assert ours.trailing_data == reference.trailing_data[0]


# ----------------------------------------------------------------- writing


def _framing(data: bytes, method: bytes) -> list[tuple[object, ...]]:
    """What a client (h11) reads from a written response: the head's framing headers
    and connection tokens, the body, the end."""
    reader = h11.Connection(h11.CLIENT)
    reader.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"x")]))
    reader.send(h11.EndOfMessage())
    events = drive_h11(reader, [data], eof=True)
    out: list[tuple[object, ...]] = []
    for event in events:
        if event[0] == "response":
            headers: list[tuple[bytes, bytes]] = event[3]  # type: ignore[assignment]
            framing = sorted(
                (k, v) for k, v in headers if k in (b"content-length", b"transfer-encoding")
            )
            tokens = sorted(
                {t.strip() for k, v in headers if k == b"connection" for t in v.split(b",")}
            )
            others = [(k, v) for k, v in headers if k not in (b"connection", b"transfer-encoding")]
            out.append(("response", event[1], framing, tokens, others))
        else:
            out.append(event)
    return out


@_SETTINGS
@given(
    method=st.sampled_from([b"GET", b"HEAD", b"POST"]),
    version=st.sampled_from([b"1.1", b"1.0"]),
    close=st.booleans(),
    status=st.sampled_from([200, 204, 304, 404]),
    framing=st.sampled_from(["length", "chunked", "none", "both"]),
    extra=st.lists(st.sampled_from([(b"x-a", b"1"), (b"connection", b"keep-alive")]), max_size=2),
    parts=st.lists(st.binary(min_size=1, max_size=8), max_size=3),
)
def test_responses_are_framed_as_h11_frames_them(
    method: bytes,
    version: bytes,
    close: bool,
    status: int,
    framing: str,
    extra: list[tuple[bytes, bytes]],
    parts: list[bytes],
) -> None:
    request = b"%s / HTTP/%s\r\nhost: x\r\n%s\r\n" % (
        method,
        version,
        b"connection: close\r\n" if close else b"",
    )
    body = b"".join(parts)
    headers = list(extra)
    if framing in ("length", "both"):
        headers.append((b"content-length", b"%d" % len(body)))
    if framing in ("chunked", "both"):
        headers.append((b"transfer-encoding", b"chunked"))
    if status in (204, 304) or method == b"HEAD":
        parts = []
        if framing in ("length", "both"):
            headers = [(k, v) for k, v in headers if k != b"content-length"]
            headers.append((b"content-length", b"0"))

    reference = h11.Connection(h11.SERVER)
    reference.receive_data(request)
    assert isinstance(reference.next_event(), h11.Request)
    assert isinstance(reference.next_event(), h11.EndOfMessage)
    expected = reference.send(h11.Response(status_code=status, headers=headers))
    for part in parts:
        expected += reference.send(h11.Data(data=part))
    expected += reference.send(h11.EndOfMessage())

    ours = codec.Connection(client=False)
    ours.receive_data(request)
    assert isinstance(ours.next_event(), codec.Request)
    assert isinstance(ours.next_event(), codec.EndOfMessage)
    written = ours.send_head(codec.Response(status, headers))
    for part in parts:
        written += ours.send_data(part)
    written += ours.send_end()

    assert _framing(written, method) == _framing(expected, method)
    assert ours.can_reuse == (reference.our_state is h11.DONE and reference.their_state is h11.DONE)


@given(
    value=st.binary(max_size=6).map(lambda b: b"v" + b),
    name=st.sampled_from([b"x-a", b"x\r\ny", b"x\n"]),
)
def test_a_written_head_never_carries_a_line_break_inside_a_line(value: bytes, name: bytes) -> None:
    ours = codec.Connection(client=True)
    head = codec.Request(b"GET", b"/", [(b"host", b"x"), (name, value)])
    bad = any(c in name + value for c in b"\r\n\x00")
    try:
        data = ours.send_head(head)
    except codec.LocalProtocolError:
        assert bad
        return
    assert not bad
    assert data.count(b"\r\n") == 4
    assert data.endswith(b"\r\n\r\n")

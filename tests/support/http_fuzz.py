"""Hypothesis generators of HTTP/1.1 messages (valid, broken and mutated) and a driver
that feeds them to ``httpwire.codec`` in pieces: the differential tests' shared inputs
(``tests/unit/test_codec_fuzz.py`` against h11, ``test_native_fuzz.py`` against the
compiled core)."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from agent_relay.httpwire import codec

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


def merged(events: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
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


def drive_codec(conn: codec.Connection, chunks: list[bytes], eof: bool) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    feed = iter(chunks)
    ended = False
    while True:
        try:
            event = conn.next_event()
        except codec.ProtocolError as exc:
            out.append(("error", exc.status))
            return merged(out)
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
            return merged(out)
        if event is codec.PAUSED:
            out.append(("paused",))
            return merged(out)
        out.append(_codec_event(event))
        if isinstance(event, codec.ConnectionClosed):
            return merged(out)

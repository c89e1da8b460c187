"""The hot path's HTTP/1.1 codec against h11 (the reference) on the same bytes: the same
accept/reject decision (and status) for heads, the same parsed method, target, status,
reason, headers and version, the same body bytes and message ends, fed in random pieces;
and heads the codec writes are framed the way h11 frames them."""

from __future__ import annotations

from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay.httpwire import codec
from tests.support.http_fuzz import drive_codec, merged, pieces, request_bytes, response_bytes

MAX_HEAD = 4096


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


def drive_h11(conn: h11.Connection, chunks: list[bytes], eof: bool) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    feed = iter(chunks)
    ended = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            out.append(("error", exc.error_status_hint))
            return merged(out)
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
            return merged(out)
        if event is h11.PAUSED:
            out.append(("paused",))
            return merged(out)
        out.append(_h11_event(event))
        if isinstance(event, h11.ConnectionClosed):
            return merged(out)


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

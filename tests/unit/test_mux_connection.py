"""The sans-IO yamux connection, driven by hand: no sockets, no clocks."""

from __future__ import annotations

import pytest

from agent_relay.mux import (
    Connection,
    GoAwayError,
    MuxConfig,
    SessionClosedError,
    StreamClosedError,
    StreamIdsExhaustedError,
    StreamResetError,
    TooManyStreamsError,
)
from agent_relay.mux.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoAwayReceived,
    PingAcknowledged,
    SendWindowUpdated,
    StreamAcknowledged,
    StreamEnded,
    StreamOpened,
    StreamReset,
)
from agent_relay.mux.frame import (
    INITIAL_WINDOW,
    Flag,
    FrameType,
    GoAwayCode,
    decode_header,
    encode_header,
)

KIB = 1024


def pair(config: MuxConfig | None = None) -> tuple[Connection, Connection]:
    return Connection(client=True, config=config), Connection(client=False, config=config)


def deliver(src: Connection, dst: Connection) -> list[Event]:
    return dst.receive_data(src.data_to_send())


def frames(data: bytes) -> list[tuple[FrameType, int, int, int]]:
    """Headers in ``data``, skipping data payloads."""
    out = []
    pos = 0
    while pos < len(data):
        h = decode_header(data, pos)
        out.append((h.type, h.flags, h.stream_id, h.length))
        pos += 12 + (h.length if h.type is FrameType.DATA else 0)
    return out


def go_away_code(data: bytes) -> int | None:
    codes = [length for kind, _, _, length in frames(data) if kind is FrameType.GO_AWAY]
    return codes[-1] if codes else None


def received(events: list[Event], stream_id: int) -> bytes:
    return b"".join(
        e.data for e in events if isinstance(e, DataReceived) and e.stream_id == stream_id
    )


def test_open_accept_exchange_and_close() -> None:
    client, server = pair()
    sid = client.open_stream()
    assert sid == 1
    assert client.send_data(sid, b"hello") == 5
    events = deliver(client, server)
    assert events[0] == StreamOpened(1)
    assert received(events, 1) == b"hello"
    assert server.accept_stream(1)
    assert server.send_data(1, b"world") == 5
    server.close_stream(1)
    events = deliver(server, client)
    assert StreamAcknowledged(1) in events
    assert received(events, 1) == b"world"
    assert events[-1] == StreamEnded(1)
    client.close_stream(1)
    assert deliver(client, server) == [StreamEnded(1)]
    assert client.num_streams == 0
    assert server.num_streams == 0


def test_server_opens_even_streams() -> None:
    client, server = pair()
    assert server.open_stream() == 2
    assert server.open_stream() == 4
    assert [e for e in deliver(server, client) if isinstance(e, StreamOpened)] == [
        StreamOpened(2),
        StreamOpened(4),
    ]


def test_syn_grants_the_configured_window() -> None:
    config = MuxConfig(max_stream_window=4 * 1024 * 1024)
    client, server = Connection(client=True, config=config), Connection(client=False)
    client.open_stream()
    deliver(client, server)
    assert server.send_window(1) == 4 * 1024 * 1024


def test_send_is_limited_by_the_window_and_resumes_after_update() -> None:
    client, server = pair()
    sid = client.open_stream()
    deliver(client, server)
    server.accept_stream(sid)
    deliver(server, client)
    window = client.send_window(sid)
    assert window == 1024 * KIB  # 256 KiB initial + the ACK's grant up to the default 1 MiB
    payload = b"x" * (window + 100)
    assert client.send_data(sid, payload) == window
    assert client.send_data(sid, payload) == 0
    events = deliver(client, server)
    assert len(received(events, sid)) == window
    # Nothing is granted until the reader consumes at least half the window.
    server.consume(sid, window // 2 - 1)
    assert server.data_to_send() == b""
    server.consume(sid, 1)
    events = deliver(server, client)
    assert events == [SendWindowUpdated(sid)]
    assert client.send_window(sid) == window // 2


def test_large_sends_are_split_into_frames() -> None:
    config = MuxConfig(max_frame_payload=64 * KIB)
    client = Connection(client=True, config=config)
    sid = client.open_stream()
    client.send_data(sid, b"y" * (200 * KIB))
    data_frames = [f for f in frames(client.data_to_send()) if f[0] is FrameType.DATA]
    assert [f[3] for f in data_frames] == [64 * KIB, 64 * KIB, 64 * KIB, 8 * KIB]


def test_byte_at_a_time_gives_the_same_data() -> None:
    client, server = pair()
    sid = client.open_stream()
    client.send_data(sid, bytes(range(256)) * 10)
    client.close_stream(sid)
    wire = client.data_to_send()
    events: list[Event] = []
    for i in range(len(wire)):
        events += server.receive_data(wire[i : i + 1])
    assert received(events, sid) == bytes(range(256)) * 10
    assert events[0] == StreamOpened(sid)
    assert events[-1] == StreamEnded(sid)


def test_reset_by_peer() -> None:
    client, server = pair()
    sid = client.open_stream()
    deliver(client, server)
    server.reset_stream(sid)
    assert deliver(server, client) == [StreamReset(sid)]
    with pytest.raises(StreamResetError):
        client.send_data(sid, b"x")


def test_data_in_flight_after_our_reset_is_dropped_quietly() -> None:
    client, server = pair()
    sid = client.open_stream()
    deliver(client, server)
    server.accept_stream(sid)
    deliver(server, client)
    client.send_data(sid, b"late data")
    in_flight = client.data_to_send()
    server.reset_stream(sid)
    assert server.receive_data(in_flight) == []
    assert not server.terminated


def test_write_after_half_close_is_refused() -> None:
    client, _ = pair()
    sid = client.open_stream()
    client.close_stream(sid)
    with pytest.raises(StreamClosedError):
        client.send_data(sid, b"x")


def test_backlog_overflow_resets_new_streams() -> None:
    config = MuxConfig(accept_backlog=2)
    client, server = Connection(client=True), Connection(client=False, config=config)
    for _ in range(3):
        client.open_stream()
    events = deliver(client, server)
    assert [e for e in events if isinstance(e, StreamOpened)] == [
        StreamOpened(1),
        StreamOpened(3),
    ]
    assert deliver(server, client) == [StreamReset(5)]
    server.accept_stream(1)
    client.open_stream()
    assert StreamOpened(7) in deliver(client, server)


def test_zero_backlog_refuses_every_stream() -> None:
    client, server = (
        Connection(client=True),
        Connection(client=False, config=MuxConfig(accept_backlog=0)),
    )
    client.open_stream()
    assert deliver(client, server) == []
    assert deliver(server, client) == [StreamReset(1)]


def test_stream_limit() -> None:
    config = MuxConfig(max_streams=2)
    client, server = Connection(client=True), Connection(client=False, config=config)
    for _ in range(3):
        client.open_stream()
    events = deliver(client, server)
    assert [e for e in events if isinstance(e, StreamOpened)] == [
        StreamOpened(1),
        StreamOpened(3),
    ]
    assert deliver(server, client) == [StreamReset(5)]
    with pytest.raises(TooManyStreamsError):
        server.open_stream()


def test_stream_ids_exhausted() -> None:
    client = Connection(client=True)
    client._next_id = 0xFFFF_FFFF
    assert client.open_stream() == 0xFFFF_FFFF
    with pytest.raises(StreamIdsExhaustedError):
        client.open_stream()


def test_ping_is_answered_and_acknowledged() -> None:
    client, server = pair()
    client.ping(42)
    assert deliver(client, server) == []
    assert frames(server.data_to_send()) == [(FrameType.PING, Flag.ACK, 0, 42)]
    client.ping(43)
    deliver(client, server)
    assert deliver(server, client) == [PingAcknowledged(43)]


def test_remote_go_away_stops_new_streams_but_not_open_ones() -> None:
    client, server = pair()
    sid = client.open_stream()
    deliver(client, server)
    server.accept_stream(sid)
    server.go_away()
    events = deliver(server, client)
    assert GoAwayReceived(GoAwayCode.NORMAL) in events
    with pytest.raises(GoAwayError):
        client.open_stream()
    assert client.send_data(sid, b"still fine") == 10
    assert received(deliver(client, server), sid) == b"still fine"


def test_after_local_go_away_incoming_streams_are_reset() -> None:
    client, server = pair()
    server.go_away()
    deliver(server, client)
    # A peer that ignores our Go Away still gets its streams refused.
    client.remote_go_away = None
    client.open_stream()
    assert deliver(client, server) == []
    assert deliver(server, client) == [StreamReset(1)]


def test_close_sends_go_away_and_refuses_use() -> None:
    client = Connection(client=True)
    events = client.close()
    assert events == [ConnectionTerminated(GoAwayCode.NORMAL, "closed")]
    assert go_away_code(client.data_to_send()) == GoAwayCode.NORMAL
    with pytest.raises(SessionClosedError):
        client.open_stream()
    with pytest.raises(SessionClosedError):
        client.ping(1)


def test_eof_terminates_without_go_away() -> None:
    client, _ = pair()
    events = client.receive_eof()
    assert isinstance(events[0], ConnectionTerminated)
    assert not events[0].sent_go_away
    assert client.data_to_send() == b""


# --------------------------------------------------------------- protocol violations


def violation(server: Connection, wire: bytes) -> str:
    events = server.receive_data(wire)
    terminated = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert terminated, f"no termination for {wire!r}: {events}"
    assert terminated[0].code == GoAwayCode.PROTOCOL_ERROR
    assert go_away_code(server.data_to_send()) == GoAwayCode.PROTOCOL_ERROR
    assert server.terminated
    assert server.receive_data(wire) == []  # nothing more happens afterwards
    return terminated[0].reason


def hdr(kind: int, flags: int, sid: int, length: int) -> bytes:
    return encode_header(kind, flags, sid, length)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x01" + bytes(11), "version"),
        (hdr(7, 0, 1, 0), "unknown frame type"),
        (hdr(0, 0x20, 1, 0), "unknown flags"),
        (hdr(0, 0, 1, 3) + b"abc", "never opened"),
        (hdr(1, 0, 9, 5), "never opened"),
        (hdr(1, Flag.SYN, 2, 0), "our parity"),
        (hdr(1, Flag.SYN, 3, 0) + hdr(1, Flag.SYN, 1, 0) + hdr(1, Flag.SYN, 1, 0), "reused"),
        (hdr(1, Flag.SYN, 1, 0) + hdr(1, Flag.SYN, 1, 0), "reused"),
        (hdr(0, Flag.SYN, 1, INITIAL_WINDOW + 1), "exceeds the window"),
        (hdr(1, Flag.SYN | Flag.FIN, 1, 0) + hdr(0, 0, 1, 1) + b"x", "data after FIN"),
        (hdr(1, Flag.SYN, 1, 0xFFFF_FFFF), "window overflow"),
        (hdr(2, Flag.SYN, 3, 0), "ping on a stream"),
    ],
)
def test_protocol_violations_end_in_go_away(wire: bytes, reason: str) -> None:
    assert reason in violation(Connection(client=False), wire)


def test_syns_may_arrive_out_of_order() -> None:
    server = Connection(client=False)
    events = server.receive_data(b"".join(hdr(1, Flag.SYN, i, 0) for i in (5, 1, 3, 7)))
    assert events == [StreamOpened(5), StreamOpened(1), StreamOpened(3), StreamOpened(7)]


def test_data_on_a_closed_stream_is_a_violation() -> None:
    client, server = pair()
    sid = client.open_stream()
    client.close_stream(sid)
    deliver(client, server)
    server.accept_stream(sid)
    server.close_stream(sid)
    assert server.num_streams == 0
    assert "closed stream" in violation(server, hdr(0, 0, sid, 2) + b"hi")


def test_exceeding_the_window_later_is_a_violation() -> None:
    server = Connection(client=False)
    server.receive_data(
        hdr(1, Flag.SYN, 1, 0) + hdr(0, 0, 1, INITIAL_WINDOW) + bytes(INITIAL_WINDOW)
    )
    assert "exceeds" in violation(server, hdr(0, 0, 1, 1) + b"x")


def test_ping_flood_from_a_peer_that_never_reads_is_cut_off() -> None:
    server = Connection(client=False, config=MuxConfig(max_pending_control=1200))
    ping = hdr(2, Flag.SYN, 0, 1)
    assert server.receive_data(ping * 100) == []  # 1200 bytes of answers: at the limit
    assert "without reading" in violation(server, ping)


def test_pings_answered_and_read_are_not_a_flood() -> None:
    server = Connection(client=False, config=MuxConfig(max_pending_control=1200))
    for _ in range(50):
        assert server.receive_data(hdr(2, Flag.SYN, 0, 1) * 100) == []
        server.data_to_send()
    assert not server.terminated

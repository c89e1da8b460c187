"""Hostile input for the sans-IO yamux connection: nothing escapes, memory stays bounded,
and a violation always ends in a Go Away with the protocol-error code."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay.mux import Connection, MuxConfig, MuxError
from agent_relay.mux.events import ConnectionTerminated, DataReceived, Event, StreamOpened
from agent_relay.mux.frame import HEADER_SIZE, FrameType, GoAwayCode, decode_header, encode_header

CONFIG = MuxConfig(accept_backlog=8, max_streams=16, max_pending_control=4096)
OUTPUT_BOUND = CONFIG.max_pending_control + 2 * HEADER_SIZE


def last_go_away(data: bytes) -> int | None:
    code = None
    pos = 0
    while pos + HEADER_SIZE <= len(data):
        header = decode_header(data, pos)
        if header.type is FrameType.GO_AWAY:
            code = header.length
        pos += HEADER_SIZE + (header.length if header.type is FrameType.DATA else 0)
    return code


def check_invariants(conn: Connection, events: list[Event]) -> None:
    assert conn.pending_output <= OUTPUT_BOUND
    assert len(conn._partial_header) < HEADER_SIZE
    assert conn.num_streams <= CONFIG.max_streams
    for state in conn._streams.values():
        assert 0 <= state.buffered <= CONFIG.max_stream_window
        assert state.recv_window >= 0
    for event in events:
        if isinstance(event, ConnectionTerminated) and event.sent_go_away:
            assert event.code == GoAwayCode.PROTOCOL_ERROR


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(client=st.booleans(), chunks=st.lists(st.binary(max_size=64), max_size=40))
def test_arbitrary_bytes(client: bool, chunks: list[bytes]) -> None:
    conn = Connection(client=client, config=CONFIG)
    for chunk in chunks:
        events = conn.receive_data(chunk)
        check_invariants(conn, events)
    if conn.terminated:
        assert last_go_away(conn.data_to_send()) == GoAwayCode.PROTOCOL_ERROR


# Frames that are well formed often enough to reach deep states: small stream ids of
# either parity, any flags (including unknown ones, rarely), lengths near the windows.
frame_types = st.sampled_from([0, 0, 1, 1, 2, 3]) | st.integers(0, 255)
flag_values = st.integers(0, 15) | st.integers(0, 0xFFFF)
stream_ids = st.integers(0, 12) | st.integers(0, 0xFFFF_FFFF)
lengths = st.sampled_from([0, 1, 5, 1024, 256 * 1024, 256 * 1024 + 1]) | st.integers(0, 0xFFFF_FFFF)


@st.composite
def frame(draw: st.DrawFn) -> bytes:
    kind = draw(frame_types)
    flags = draw(flag_values)
    stream_id = draw(stream_ids)
    length = draw(lengths)
    version = draw(st.sampled_from([0] * 20 + [1]))
    raw = bytes([version]) + encode_header(kind, flags, stream_id, length)[1:]
    if kind == FrameType.DATA:
        raw += bytes(min(length, draw(st.integers(0, 300))))
    return raw


@st.composite
def app_action(draw: st.DrawFn) -> tuple[str, int]:
    return draw(st.sampled_from(["accept", "consume", "send", "reset", "close", "open"])), draw(
        st.integers(0, 12)
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    client=st.booleans(),
    steps=st.lists(st.one_of(frame(), app_action()), max_size=60),
    split=st.integers(1, 40),
)
def test_adversarial_frame_sequences(
    client: bool, steps: list[bytes | tuple[str, int]], split: int
) -> None:
    conn = Connection(client=client, config=CONFIG)
    unread: dict[int, int] = {}
    for step in steps:
        events: list[Event] = []
        if isinstance(step, bytes):
            for i in range(0, len(step), split):
                events += conn.receive_data(step[i : i + split])
        else:
            action, sid = step
            try:
                if action == "accept":
                    conn.accept_stream(sid)
                elif action == "consume" and unread.get(sid):
                    conn.consume(sid, unread.pop(sid))
                elif action == "send":
                    conn.send_data(sid, b"z" * 100)
                elif action == "reset":
                    conn.reset_stream(sid)
                elif action == "close":
                    conn.close_stream(sid)
                elif action == "open":
                    conn.open_stream()
            except MuxError:  # the API may refuse; anything else propagates and fails
                pass
        for event in events:
            if isinstance(event, DataReceived):
                unread[event.stream_id] = unread.get(event.stream_id, 0) + len(event.data)
            elif isinstance(event, StreamOpened):
                unread.setdefault(event.stream_id, 0)
        check_invariants(conn, events)
        if conn.pending_output > OUTPUT_BOUND // 2:
            conn.data_to_send()  # the peer reads now and then
    if conn.terminated:
        out = conn.data_to_send()
        code = last_go_away(out)
        assert code in (None, GoAwayCode.PROTOCOL_ERROR)


@settings(max_examples=100, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 5000), min_size=1, max_size=30),
)
def test_any_split_of_a_valid_stream_gives_the_same_events(
    payloads: list[bytes], cuts: list[int]
) -> None:
    sender = Connection(client=True)
    ids = []
    for payload in payloads:
        sid = sender.open_stream()
        ids.append(sid)
        sender.send_data(sid, payload)
        sender.close_stream(sid)
        sender.ping(sid)
    wire = sender.data_to_send()

    whole = Connection(client=False).receive_data(wire)
    pieces = Connection(client=False)
    events: list[Event] = []
    pos = 0
    for cut in cuts * (len(wire) // sum(cuts) + 1):
        if pos >= len(wire):
            break
        events += pieces.receive_data(wire[pos : pos + cut])
        pos += cut

    def merged(evs: list[Event]) -> list[object]:
        out: list[object] = []
        for e in evs:
            if isinstance(e, DataReceived) and out and isinstance(out[-1], DataReceived):
                prev = out[-1]
                if prev.stream_id == e.stream_id:
                    out[-1] = DataReceived(e.stream_id, prev.data + e.data)
                    continue
            out.append(e)
        return out

    assert merged(events) == merged(whole)
    for sid, payload in zip(ids, payloads, strict=True):
        assert (
            b"".join(e.data for e in whole if isinstance(e, DataReceived) and e.stream_id == sid)
            == payload
        )

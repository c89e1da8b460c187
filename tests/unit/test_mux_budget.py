"""The relay-wide receive budget: window grants shrink as it fills and as streams
multiply, a stalled reader holds no more than its window, and everything is given back
when streams and sessions end. Measured through the budget's own accounting."""

from __future__ import annotations

import asyncio

import pytest

from agent_relay.mux import BufferAccount, Connection, MuxConfig, ReceiveBudget
from agent_relay.mux.events import DataReceived, Event
from agent_relay.mux.frame import INITIAL_WINDOW

KIB = 1024
MIB = 1024 * KIB
CONFIG = MuxConfig(max_stream_window=4 * MIB)


def relay_and_host(budget: ReceiveBudget) -> tuple[Connection, Connection]:
    """The relay (server side, opens streams, budgeted) and a host that answers."""
    return Connection(client=False, config=CONFIG, budget=budget), Connection(
        client=True, config=CONFIG
    )


def deliver(src: Connection, dst: Connection) -> list[Event]:
    return dst.receive_data(src.data_to_send())


def received(events: list[Event], stream_id: int) -> int:
    return sum(
        len(e.data) for e in events if isinstance(e, DataReceived) and e.stream_id == stream_id
    )


def open_answered(relay: Connection, host: Connection) -> int:
    sid = relay.open_stream()
    deliver(relay, host)
    assert host.accept_stream(sid)
    deliver(host, relay)
    return sid


def flood(host: Connection, relay: Connection, sid: int) -> int:
    """The host sends all its window allows; the bytes the relay received."""
    sent = host.send_data(sid, b"x" * host.send_window(sid))
    assert received(deliver(host, relay), sid) == sent
    return sent


def test_without_pressure_a_stream_gets_its_full_window() -> None:
    budget = ReceiveBudget(limit=64 * MIB)
    relay, host = relay_and_host(budget)
    sid = open_answered(relay, host)
    assert host.send_window(sid) == 4 * MIB
    assert budget.committed == 4 * MIB
    assert budget.streams == 1


def test_grants_shrink_when_the_budget_is_near() -> None:
    budget = ReceiveBudget(limit=6 * MIB)
    relay, host = relay_and_host(budget)
    first = open_answered(relay, host)
    assert host.send_window(first) == 4 * MIB  # all it may have: 6 MiB are free
    second = open_answered(relay, host)
    assert host.send_window(second) == 2 * MIB  # what is left
    third = open_answered(relay, host)
    # Nothing is free: the third gets only yamux's initial window, never more.
    assert host.send_window(third) == INITIAL_WINDOW
    assert budget.committed == 6 * MIB + INITIAL_WINDOW


def test_many_streams_get_smaller_windows() -> None:
    budget = ReceiveBudget(limit=32 * MIB)
    relay, host = relay_and_host(budget)
    sids = [open_answered(relay, host) for _ in range(64)]
    # 32 MiB over 64 streams: each share is 512 KiB, below the configured 4 MiB.
    for sid in sids[-8:]:
        assert host.send_window(sid) <= 512 * KIB
    assert budget.committed <= budget.limit + 64 * INITIAL_WINDOW


def test_a_stalled_reader_holds_no_more_than_its_window() -> None:
    budget = ReceiveBudget(limit=1 * MIB)
    relay, host = relay_and_host(budget)
    sid = open_answered(relay, host)
    total = flood(host, relay, sid)
    # The reader never consumes: the host gets no more credit however long it pushes.
    for _ in range(10):
        assert host.send_data(sid, b"x" * 64 * KIB) == 0
        deliver(host, relay)
    assert total <= 1 * MIB
    assert budget.committed == total


def test_a_reader_that_reads_keeps_flowing_with_an_exhausted_budget() -> None:
    budget = ReceiveBudget(limit=1 * MIB, min_window=16 * KIB)
    relay, host = relay_and_host(budget)
    stalled = open_answered(relay, host)
    flood(host, relay, stalled)  # fills the budget, never read
    reading = open_answered(relay, host)
    moved = 0
    for _ in range(50):
        got = flood(host, relay, reading)
        relay.consume(reading, got)
        deliver(relay, host)
        moved += got
    assert moved >= 50 * 16 * KIB  # never starved
    # Overshoot past the limit is at most the minimum window per stream being read.
    assert budget.committed <= budget.limit + INITIAL_WINDOW + budget.min_window


def test_consumed_bytes_are_given_back() -> None:
    budget = ReceiveBudget(limit=8 * MIB)
    relay, host = relay_and_host(budget)
    sid = open_answered(relay, host)
    got = flood(host, relay, sid)
    relay.consume(sid, got)
    deliver(relay, host)
    # What was read is no longer held; the new grant is charged in its place.
    assert host.send_window(sid) == 4 * MIB
    assert budget.committed == host.send_window(sid)


def test_ended_streams_and_sessions_release_everything() -> None:
    budget = ReceiveBudget(limit=16 * MIB)
    relay, host = relay_and_host(budget)
    a = open_answered(relay, host)
    b = open_answered(relay, host)
    flood(host, relay, a)
    relay.reset_stream(a)
    assert budget.streams == 1
    flood(host, relay, b)
    other_relay, other_host = relay_and_host(budget)
    open_answered(other_relay, other_host)
    relay.receive_eof()  # the first session ends with data still unread
    assert budget.streams == 1
    other_relay.close()
    assert budget.streams == 0
    assert budget.committed == 0


def test_sessions_without_a_budget_are_unchanged() -> None:
    relay = Connection(client=False, config=CONFIG)
    host = Connection(client=True, config=CONFIG)
    sid = open_answered(relay, host)
    assert host.send_window(sid) == 4 * MIB


@pytest.mark.parametrize(("limit", "min_window"), [(0, 1), (1, 0)])
def test_a_budget_needs_positive_sizes(limit: int, min_window: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        ReceiveBudget(limit=limit, min_window=min_window)


async def test_a_held_chunk_stays_in_the_budget_until_the_next_read() -> None:
    """The relay's download (hold_until_next_read): what a read returned counts as
    buffered until the reader comes back for more, so the chunk it handed to a client
    that stopped reading (stuck in that client's socket buffer) still counts against
    the stream's window and the budget. Without it, the budget forgets those bytes the
    moment they are read, and grants the host as much again."""
    from agent_relay.mux import MuxSession
    from tests.support.streams import memory_pair

    budget = ReceiveBudget(limit=32 * MIB)
    a, b = memory_pair()
    relay = MuxSession(a, client=False, config=CONFIG, budget=budget)
    host = MuxSession(b, client=True, config=CONFIG)
    try:
        stream = await relay.open_stream()
        stream.hold_until_next_read()
        accepted = await host.accept_stream()
        await accepted.write(b"x" * (1 * MIB))
        got, last = 0, b""
        while got < 1 * MIB:  # the relay passes it on; the last chunk is still out
            last = await stream.read()
            got += len(last)
        await relay.ping()  # a window update queued before the ping has arrived now
        await host.ping()
        # Counted: the host's credit, and the chunk not yet gone on to the client.
        assert budget.committed == accepted.send_window + len(last)
        # The reader comes back for more: the chunk is released (a grant may follow).
        reading = asyncio.ensure_future(stream.read())
        await relay.ping()
        await host.ping()
        assert budget.committed == accepted.send_window
        reading.cancel()
    finally:
        await relay.close()
        await host.close()
    assert budget.committed == 0


async def test_the_read_loop_keeps_no_message_while_it_waits_for_the_next() -> None:
    """A transport read (one WebSocket message, as large as the peer likes) is handed to
    the streams and dropped: an idle session waiting for its next message (until the
    next keepalive) must not keep the last one in memory."""
    import gc
    import tracemalloc

    from agent_relay.mux import MuxSession
    from agent_relay.mux.frame import Flag, FrameType, encode_header

    class Feed:
        def __init__(self) -> None:
            self.messages: asyncio.Queue[bytes] = asyncio.Queue()

        async def read(self) -> bytes:
            return await self.messages.get()

        async def write(self, data: bytes) -> None:
            pass

        async def close(self) -> None:
            pass

    feed = Feed()
    session = MuxSession(feed, client=False, config=MuxConfig(keepalive_interval=None))
    size = INITIAL_WINDOW
    tracemalloc.start()
    try:
        feed.messages.put_nowait(encode_header(FrameType.DATA, Flag.SYN, 1, size) + b"x" * size)
        stream = await session.accept_stream()
        got = 0
        while got < size:
            got += len(await stream.read())
        await asyncio.sleep(0)  # the read loop is waiting for the next message now
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await session.close()
    assert held < size // 2


def test_a_streams_account_counts_what_it_holds_and_nothing_once_it_is_gone() -> None:
    budget = ReceiveBudget(limit=64 * MIB)
    relay, host = relay_and_host(budget)
    relay_wide = BufferAccount()
    user = BufferAccount(parent=relay_wide)
    sid = relay.open_stream(user)
    deliver(relay, host)
    assert host.accept_stream(sid)
    deliver(host, relay)
    other = open_answered(relay, host)  # no account: not counted anywhere
    sent = flood(host, relay, sid)
    flood(host, relay, other)
    assert user.buffered == relay_wide.buffered == sent
    relay.consume(sid, 1000)
    assert user.buffered == relay_wide.buffered == sent - 1000
    relay.reset_stream(sid)
    assert user.buffered == relay_wide.buffered == 0


def test_a_sessions_end_settles_its_streams_accounts() -> None:
    relay, host = relay_and_host(ReceiveBudget(limit=64 * MIB))
    user = BufferAccount()
    sid = relay.open_stream(user)
    deliver(relay, host)
    assert host.accept_stream(sid)
    deliver(host, relay)
    assert flood(host, relay, sid) == user.buffered > 0
    relay.receive_eof()
    assert user.buffered == 0
    relay.consume(sid, 10)  # a late read of what was buffered changes nothing
    assert user.buffered == 0

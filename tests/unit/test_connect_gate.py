"""The relay's connect admission: a cap on handshakes at once, a bounded wait for a
place beyond it, and a Retry-After sized to the herd (refusals of the last second over
handshakes completed in it)."""

from __future__ import annotations

import asyncio

from agent_relay.relay.gate import MAX_RETRY_AFTER, ConnectGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_within_the_cap_connects_go_ahead_and_leaving_frees_a_place() -> None:
    gate = ConnectGate(2, clock=Clock())
    assert gate.try_enter() is None
    assert gate.try_enter() is None
    assert gate.try_enter() is not None
    gate.leave(completed=True)
    assert gate.try_enter() is None


def test_retry_after_grows_with_the_herd_over_the_completion_rate() -> None:
    clock = Clock()
    gate = ConnectGate(10, clock=clock)
    for _ in range(10):
        assert gate.try_enter() is None
    # Before anything completed, the cap (10 a second) is the rate: the 50th refused
    # host is told 5 s.
    told = [gate.try_enter() for _ in range(50)]
    assert told[0] == 1
    assert told[-1] == 5
    for _ in range(10):
        gate.leave(completed=True)
    clock.now += 1.0  # a second in which 10 completed and 50 were refused
    for _ in range(10):
        assert gate.try_enter() is None
    assert gate.try_enter() == 5
    assert all(1 <= (gate.try_enter() or 0) <= MAX_RETRY_AFTER for _ in range(10_000))
    clock.now += 5.0  # quiet since: the past herd is forgotten
    for _ in range(10):
        gate.leave(completed=False)
    assert gate.try_enter() is None


# ------------------------------------------------------------------ waiting for a place


async def test_beyond_the_cap_a_connect_waits_and_takes_the_place_of_one_that_leaves() -> None:
    gate = ConnectGate(1, queue=10, max_wait=30, clock=Clock())
    assert await gate.enter() is None
    first = asyncio.create_task(gate.enter())
    second = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    assert gate.waiting == 2
    assert not first.done()
    gate.leave(completed=True)
    assert await first is None  # first come, first served
    assert not second.done()
    assert gate.active == 1
    gate.leave(completed=True)
    assert await second is None
    gate.leave(completed=True)
    assert (gate.active, gate.waiting) == (0, 0)


async def test_a_full_queue_and_a_long_wait_are_refused_with_retry_after() -> None:
    gate = ConnectGate(1, queue=1, max_wait=0.05, clock=Clock())
    assert await gate.enter() is None
    waiting = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    told = await gate.enter()  # the queue is full: refused at once
    assert told is not None
    assert told >= 1
    assert await waiting is not None  # waited 50 ms for nothing: refused too
    assert (gate.active, gate.waiting) == (1, 0)
    gate.leave(completed=True)
    assert gate.active == 0  # nobody was waiting any more: the place is free


async def test_a_waiter_that_goes_away_neither_keeps_nor_loses_a_place() -> None:
    gate = ConnectGate(1, queue=10, max_wait=30, clock=Clock())
    assert await gate.enter() is None
    gone = asyncio.create_task(gate.enter())
    stays = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert gate.waiting == 1
    gate.leave(completed=True)
    assert await stays is None
    gate.leave(completed=False)
    assert (gate.active, gate.waiting) == (0, 0)


async def test_closing_refuses_the_waiting_connects_and_later_ones() -> None:
    gate = ConnectGate(1, queue=10, max_wait=30, clock=Clock())
    assert await gate.enter() is None
    waiting = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    gate.close()
    assert await waiting is not None
    gate.leave(completed=True)
    assert await gate.enter() is not None
    assert (gate.active, gate.waiting) == (0, 0)


async def test_a_cap_of_zero_refuses_at_once() -> None:
    gate = ConnectGate(0, clock=Clock())
    assert await gate.enter() == 1

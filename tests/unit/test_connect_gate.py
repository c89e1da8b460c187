"""The relay's connect admission: a cap on handshakes at once, and a Retry-After sized
to the herd (refusals of the last second over handshakes completed in it)."""

from __future__ import annotations

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

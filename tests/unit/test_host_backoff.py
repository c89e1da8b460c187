"""The reconnect backoff: full jitter within a doubling ceiling, the cap, the reset after
a connection that stayed up, and the slow retry after a refused token."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_relay.host.backoff import Backoff, BackoffPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def backoff(rolls: float = 0.999999, policy: BackoffPolicy | None = None) -> tuple[Backoff, Clock]:
    clock = Clock()
    return Backoff(policy or BackoffPolicy(), clock=clock, random=lambda: rolls), clock


def test_ceiling_doubles_from_base_to_cap() -> None:
    b, _ = backoff(rolls=1.0)  # the top of each range, to read the ceilings off
    assert [b.failed() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_full_jitter_reaches_zero() -> None:
    b, _ = backoff(rolls=0.0)
    assert [b.failed() for _ in range(5)] == [0, 0, 0, 0, 0]
    assert b.ceiling == 30  # the ceiling grew all the same


@given(st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=40))
def test_every_delay_is_within_zero_and_the_ceiling(rolls: list[float]) -> None:
    values = iter(rolls)
    b = Backoff(BackoffPolicy(base=0.5, cap=7), clock=Clock(), random=lambda: next(values))
    for _ in rolls:
        ceiling = b.ceiling
        delay = b.failed()
        assert 0 <= delay < ceiling <= 7


def test_a_connection_that_stayed_up_resets_the_backoff() -> None:
    b, clock = backoff(rolls=1.0)
    for _ in range(6):
        b.failed()
    b.connected()
    clock.now += 60
    assert b.disconnected() == 1  # back at base


def test_a_short_lived_connection_does_not_reset_it() -> None:
    b, clock = backoff(rolls=1.0)
    for _ in range(3):
        b.failed()
    b.connected()
    clock.now += 59.9
    assert b.disconnected() == 8
    b.connected()
    clock.now += 1
    assert b.disconnected() == 16


def test_reset_after_is_configurable() -> None:
    b, clock = backoff(rolls=1.0, policy=BackoffPolicy(reset_after=0.5))
    for _ in range(4):
        b.failed()
    b.connected()
    clock.now += 0.5
    assert b.disconnected() == 1


def test_a_refused_token_retries_slowly_from_the_top_half_of_the_cap() -> None:
    low, _ = backoff(rolls=0.0)
    assert low.failed(refused=True) == 15
    high, _ = backoff(rolls=0.999)
    assert 29.9 < high.failed(refused=True) < 30
    # Later ordinary failures continue from the cap.
    assert high.ceiling == 30
    assert 29.9 < high.failed() < 30


def test_the_ceiling_stops_growing_even_for_tiny_bases() -> None:
    b, _ = backoff(rolls=1.0, policy=BackoffPolicy(base=1e-30, cap=30))
    for _ in range(500):
        b.failed()
    assert b.retries == 62
    assert b.failed(refused=True) == 30


@pytest.mark.parametrize(
    "kwargs", [{"base": 0}, {"base": -1}, {"base": 5, "cap": 1}, {"reset_after": -1}]
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"backoff|reset_after"):
        BackoffPolicy(**kwargs)


def test_a_restarting_relay_is_redialled_within_the_restart_cap() -> None:
    # Connection refused (nothing listens: the relay restarts) or its Go Away: the
    # ceiling stays at 2 s however long it lasts, so hosts are back soon after it listens.
    b, _ = backoff(rolls=1.0)
    assert [b.failed(restarting=True) for _ in range(8)] == [1, 2, 2, 2, 2, 2, 2, 2]
    assert b.failed() == 30  # an ordinary failure continues from the grown ceiling
    b.connected()
    assert b.disconnected(restarting=True) == 2


def test_retry_after_is_honoured_with_jitter_and_does_not_grow_the_ceiling() -> None:
    low, _ = backoff(rolls=0.0)
    high, _ = backoff(rolls=0.999999)
    assert low.told(1.0) == 0.5
    assert high.told(1.0) == pytest.approx(1.5)
    assert high.ceiling == 1  # being told when to come back is not a failure
    assert high.told(3600) == pytest.approx(45)  # bounded by the cap (30 s), jittered

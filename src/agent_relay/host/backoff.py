"""Reconnect delays: exponential backoff with full jitter, as a pure object.

Time and randomness are passed in, so tests drive it deterministically. The n-th retry in
a row waits a uniform random time in ``[0, min(cap, base * 2**n))`` ("full jitter": hosts
that lost the same relay at the same moment do not come back in step). A connection that
stayed up for ``reset_after`` seconds starts the sequence over; one that drops sooner
does not, so a relay that accepts and at once closes is not hammered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# 2**_MAX_EXPONENT * base is far beyond any sensible cap; stops the float growing.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base: float = 1.0  # seconds: the ceiling of the first retry
    cap: float = 30.0  # seconds: the ceiling never grows past this
    reset_after: float = 60.0  # seconds a connection must stay up to reset the backoff
    # The ceiling while the relay's port refuses connections (it is restarting): a refused
    # TCP connect costs the relay nothing, and hosts must be back soon after it listens.
    restart_cap: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.reset_after < 0:
            raise ValueError("reset_after must not be negative")
        if self.restart_cap <= 0:
            raise ValueError("restart_cap must be positive")


class Backoff:
    """How long to wait before the next connection attempt.

    ``clock`` returns seconds (monotonic); ``random`` returns a float in ``[0, 1)``.
    """

    def __init__(
        self,
        policy: BackoffPolicy,
        *,
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._random = random
        self._retries = 0  # failures since the last reset
        self._connected_at: float | None = None

    @property
    def retries(self) -> int:
        return self._retries

    @property
    def ceiling(self) -> float:
        """The largest delay the next failure can draw."""
        policy = self.policy
        return min(policy.cap, math.ldexp(policy.base, min(self._retries, _MAX_EXPONENT)))

    def failed(self, *, refused: bool = False, restarting: bool = False) -> float:
        """An attempt failed; the delay before the next one.

        ``refused``: the relay rejected our credentials (401/403). Retrying soon cannot
        help until the token changes, so the delay is drawn from the top half of the cap
        (``[cap/2, cap)``), and later ordinary failures continue from the cap.

        ``restarting``: nothing listens on the relay's port (connection refused); the
        delay's ceiling is at most ``restart_cap``.
        """
        cap = self.policy.cap
        if refused:
            while self._can_grow():
                self._retries += 1
            return cap / 2 + self._random() * cap / 2
        ceiling = min(self.ceiling, self.policy.restart_cap) if restarting else self.ceiling
        delay = self._random() * ceiling
        if self._can_grow():
            self._retries += 1
        return delay

    def told(self, after: float) -> float:
        """The relay said when to come back (``Retry-After``: busy, restarting): that long
        with jitter in ``[after/2, after*3/2)``, so the herd it refused does not return in
        step. Not a failure of ours: the exponent does not grow."""
        after = min(max(after, 0.0), self.policy.cap)
        return after / 2 + self._random() * after

    def _can_grow(self) -> bool:
        return self._retries < _MAX_EXPONENT and self.ceiling < self.policy.cap

    def connected(self) -> None:
        """A connection is up; its lifetime decides whether the backoff resets."""
        self._connected_at = self._clock()

    def disconnected(self, *, restarting: bool = False) -> float:
        """The connection ended; the delay before reconnecting (``restarting``: the relay
        said it was going away, see :meth:`failed`)."""
        if self._connected_at is not None:
            if self._clock() - self._connected_at >= self.policy.reset_after:
                self._retries = 0
            self._connected_at = None
        return self.failed(restarting=restarting)

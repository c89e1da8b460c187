"""Admission for control-channel connects: the restart herd waits in the hosts, not here.

At most ``limit`` handshakes run at once (auth, the host row, the upgrade); a connect
beyond that is answered 503 before any database work, with a ``Retry-After`` sized to
the herd: the connects refused in the last second over the handshakes completed in it,
so 1,000 hosts arriving at a relay that completes 100 a second are told to come back in
about 10 s (the connector jitters it to half to one and a half times), and a refusal
does not cost the relay a retry every second per host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_RETRY_AFTER = 30  # seconds


class ConnectGate:
    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.active = 0
        self._clock = clock
        self._window_start = clock()
        self._refused = self._completed = 0  # in the current one-second window
        self._last_refused = self._last_completed = 0  # in the previous one

    def try_enter(self) -> int | None:
        """None: go ahead (call :meth:`leave` after); else the Retry-After in seconds."""
        self._roll()
        if self.active < self.limit:
            self.active += 1
            return None
        self._refused += 1
        waiting = max(self._refused, self._last_refused)
        # Before any handshake completed, assume the cap completes each second.
        rate = max(self._completed, self._last_completed, self.limit, 1)
        return max(1, min(MAX_RETRY_AFTER, math.ceil(waiting / rate)))

    def leave(self, *, completed: bool) -> None:
        self.active -= 1
        if completed:
            self._roll()
            self._completed += 1

    def _roll(self) -> None:
        now = self._clock()
        if now - self._window_start >= 1.0:
            stale = now - self._window_start >= 2.0  # a quiet second in between
            self._last_refused = 0 if stale else self._refused
            self._last_completed = 0 if stale else self._completed
            self._refused = self._completed = 0
            self._window_start = now

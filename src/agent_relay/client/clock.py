"""The host's clock as the client estimates it. Requests carry a timestamp the host
accepts within ±30 s of its own time; a client whose clock is off learns the host's time
from ``x-vk-host-time`` on a 401 and signs with the corrected time from then on.

A correction learned from an answer the host signed is taken as is. One learned from an
unsigned answer could come from the relay, which could push our timestamps into the
future, keep a request it withheld, and deliver it later; so such a correction is
bounded to ``max_unverified`` seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_UNVERIFIED_CORRECTION = 90.0


class HostClock:
    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        max_unverified: float = MAX_UNVERIFIED_CORRECTION,
    ) -> None:
        self._clock = clock
        self.offset = 0.0
        self.max_unverified = max_unverified

    def local(self) -> float:
        """Our own clock (what pairing and session records are dated with)."""
        return self._clock()

    def now(self) -> int:
        """The host's time as we estimate it, in whole seconds."""
        return int(self._clock() + self.offset)

    def observe(self, header: str | None, *, verified: bool) -> bool:
        """Adopt the host time in ``header`` (unix seconds); False when there was none
        usable or it is not believed."""
        if header is None or not header.strip().isdigit() or len(header) > 20:
            return False
        offset = int(header.strip()) - self._clock()
        if not verified and abs(offset) > self.max_unverified:
            return False
        self.offset = offset
        return True

"""Token buckets per key (a client address, a code) with bounded memory: the least
recently seen keys are forgotten first, and a forgotten key starts with a full bucket, so
the bound never locks anyone out."""

from __future__ import annotations

import math
from collections import OrderedDict


class KeyedRateLimiter:
    def __init__(self, burst: int, refill_seconds: float, max_keys: int) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: str, now: float) -> int | None:
        """Spend one token for ``key``: None when allowed, else the seconds to wait."""
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) / self.refill_seconds)
        if tokens < 1.0:
            self._remember(key, tokens, now)
            return max(1, math.ceil((1.0 - tokens) * self.refill_seconds))
        self._remember(key, tokens - 1.0, now)
        return None

    def _remember(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)

"""Admission for control-channel connects: the restart herd waits, it does not retry.

At most ``limit`` handshakes run at once (auth, the host row, the upgrade). A connect
beyond that waits for a place, first come first served, for up to ``max_wait`` seconds
(below the connector's 15 s dial timeout, so a host never gives up on a dial the relay
still upgrades), and at most ``queue`` of them wait: a parked connect costs a socket and
a task, no CPU, while a refused one costs a retry (a new TCP connection, a request head
parsed, an answer) and leaves the relay idle while the host sleeps. Beyond the queue, or
after waiting ``max_wait``, a connect is answered 503 before any database work, with a
``Retry-After`` sized to the herd: the connects waiting or refused in the last second
over the handshakes completed in it, so 1,000 hosts arriving at a relay that completes
100 a second are told to come back in about 10 s (the connector jitters it to half to one
and a half times), and a refusal does not cost the relay a retry every second per host.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable

MAX_RETRY_AFTER = 30  # seconds
MAX_WAIT = 8.0  # seconds a connect waits for a place (the connector dials for 15 s)
QUEUE = 1024  # connects waiting at most


class ConnectGate:
    def __init__(
        self,
        limit: int,
        *,
        queue: int = QUEUE,
        max_wait: float = MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0 or queue < 0 or max_wait < 0:
            raise ValueError("a connect gate needs limit, queue and max_wait >= 0")
        self.limit = limit
        self.queue = queue
        self.max_wait = max_wait
        self.active = 0
        self.waiting = 0
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._closed = False
        self._clock = clock
        self._window_start = clock()
        self._refused = self._completed = 0  # in the current one-second window
        self._last_refused = self._last_completed = 0  # in the previous one

    def try_enter(self) -> int | None:
        """Without waiting: None, go ahead (call :meth:`leave` after); else the
        Retry-After in seconds."""
        self._roll()
        if self.active < self.limit and not self.waiting and not self._closed:
            self.active += 1
            return None
        return self._refuse()

    async def enter(self) -> int | None:
        """None: go ahead (call :meth:`leave` after), at once or after waiting for a
        place; else the Retry-After in seconds (the queue is full, the wait was too
        long, or the gate closed)."""
        if self._closed or not self.limit or (self.active < self.limit and not self.waiting):
            return self.try_enter()  # a place now, or none ever (closed, or a cap of 0)
        if self.waiting >= self.queue:
            self._roll()
            return self._refuse()
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.waiting += 1
        try:
            async with asyncio.timeout(self.max_wait):
                admitted = await waiter
        except TimeoutError:
            admitted = waiter.done() and not waiter.cancelled() and waiter.result()
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.leave(completed=False)  # admitted as the connection went away
            raise
        finally:
            if not waiter.done() or waiter.cancelled():
                self.waiting -= 1  # still queued: leave() skips a cancelled waiter
                waiter.cancel()
        if admitted:
            return None
        self._roll()
        return self._refuse()

    def leave(self, *, completed: bool) -> None:
        if completed:
            self._roll()
            self._completed += 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.waiting -= 1
                waiter.set_result(True)  # the place passes on: active stays as it is
                return
        self.active -= 1

    def close(self) -> None:
        """The relay is stopping: every waiting connect is refused, and later ones too."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.waiting -= 1
                waiter.set_result(False)

    def _refuse(self) -> int:
        self._refused += 1
        waiting = max(self._refused, self._last_refused) + self.waiting
        # Before any handshake completed, assume the cap completes each second.
        rate = max(self._completed, self._last_completed, self.limit, 1)
        return max(1, min(MAX_RETRY_AFTER, math.ceil(waiting / rate)))

    def _roll(self) -> None:
        now = self._clock()
        if now - self._window_start >= 1.0:
            stale = now - self._window_start >= 2.0  # a quiet second in between
            self._last_refused = 0 if stale else self._refused
            self._last_completed = 0 if stale else self._completed
            self._refused = self._completed = 0
            self._window_start = now

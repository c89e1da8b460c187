"""Small asyncio helpers every part uses the same way: reaping a helper task, one timer
for a run of bounded waits, and a process's stop signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def reap(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` unless it is done, and wait for its end. Its own outcome (an error,
    its cancellation) is consumed; the caller's cancellation is not: it still propagates."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: what it means is the caller's to decide


class Watchdog:
    """One timer for a run of bounded waits of the current task (a body pump: read,
    write, read, …), instead of an ``asyncio.timeout()`` (a timer scheduled and
    cancelled) around each. :meth:`start` begins a wait, its timeout counted from then;
    the timer is moved only when it would fire too late (a shorter wait after a longer
    one) and otherwise checks, when it fires, whether the wait then current is over its
    time: so a wait that makes progress costs no timer of its own. A wait over its time
    cancels the task; after a ``CancelledError``, :meth:`expired` says whether it was this
    watchdog's doing and nobody else's (``asyncio.timeout``'s rule), so the caller turns
    it into its own error. :meth:`stop` when the run is over."""

    __slots__ = ("_cancelling", "_deadline", "_fired", "_handle", "_loop", "_task")

    def __init__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Watchdog needs a task")
        self._loop = asyncio.get_running_loop()
        self._task = task
        self._cancelling = task.cancelling()
        self._deadline: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    def start(self, timeout: float | None) -> None:
        """A wait begins that may last ``timeout`` seconds (None: unbounded)."""
        if timeout is None:
            self._deadline = None
            return
        deadline = self._loop.time() + timeout
        self._deadline = deadline
        handle = self._handle
        if handle is None or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._handle = None
        deadline = self._deadline
        if deadline is None or self._fired:
            return
        if self._loop.time() < deadline:  # the wait now current began later
            self._handle = self._loop.call_at(deadline, self._check)
            return
        self._fired = True
        self._task.cancel()

    def expired(self) -> bool:
        """Call on a ``CancelledError``: True when the watchdog cancelled the task and no
        one else did (then the error is the caller's to replace; otherwise re-raise)."""
        if not self._fired:
            return False
        self._fired = False
        return self._task.uncancel() <= self._cancelling

    def stop(self) -> None:
        self._deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGTERM or SIGINT while the block runs; the handlers go after."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, signalled.set)
    try:
        yield signalled
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)

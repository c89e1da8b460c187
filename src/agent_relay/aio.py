"""Small asyncio helpers every part uses the same way: reaping a helper task, and a
process's stop signals."""

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

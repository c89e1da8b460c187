"""Moving a body from one hop to the other, for the relay and the connector alike.

Both sides of a pump are bounded in time: a read that waits longer than the idle timeout
and a write that makes no progress for the send timeout (a reader that stopped reading,
like nginx's ``send_timeout``) end the body; one timer serves a pump's every wait
(``aio.Watchdog``). The response timeout of a proxied request starts only once its
request body has been sent (``receive_after_upload``): while a body still flows, only
these two apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from ..aio import Watchdog
from ..mux import MuxError
from .connection import HttpProtocolError

T = TypeVar("T")


class PumpError(Exception):
    """A body could not be moved on; ``cause`` says why."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class SourceBroken(PumpError):
    """The source stalled past the idle timeout or broke off."""


class SinkStalled(PumpError):
    """A write made no progress within the send timeout: the reader stopped reading."""


async def pump(
    source: AsyncIterator[bytes],
    send: Callable[[bytes], Awaitable[None]],
    *,
    idle_timeout: float | None,
    send_timeout: float | None,
    ready: Callable[[], bool] | None = None,
) -> int:
    """Copy ``source`` into ``send`` chunk by chunk (each write waits for the sink, so a
    slow reader slows the source) and return the bytes moved. ``ready``: True when the
    next chunk is already buffered, so no timer needs setting for it. Raises SourceBroken
    or SinkStalled; errors of the sink's own propagate unchanged."""
    moved = 0
    watchdog = Watchdog()
    reading = True
    try:
        while True:
            reading = True
            watchdog.start(None if ready is not None and ready() else idle_timeout)
            try:
                chunk = await anext(source, None)
            except (HttpProtocolError, MuxError) as exc:
                raise SourceBroken(f"broke off: {exc!r}", exc) from None
            if chunk is None:
                return moved
            moved += len(chunk)
            reading = False
            watchdog.start(send_timeout)
            await send(chunk)
    except asyncio.CancelledError:
        if not watchdog.expired():
            raise
        if reading:
            raise SourceBroken(f"no data for {idle_timeout:g} s") from None
        raise SinkStalled(f"the reader took no data for {send_timeout:g} s") from None
    finally:
        watchdog.stop()


async def receive_after_upload(
    receive: Awaitable[T], uploading: asyncio.Task[None] | None, timeout: float | None
) -> T:
    """Await a response head; ``timeout`` counts from when ``uploading`` (the request
    body) is done, or from now without one. An early answer (before the body is all
    sent) is taken as it comes; a failed upload leaves the answer still awaited (the
    server may be answering it), within ``timeout``."""
    if uploading is None or uploading.done():
        async with asyncio.timeout(timeout):
            return await receive
    answer = asyncio.ensure_future(receive)
    try:
        await asyncio.wait({answer, uploading}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            async with asyncio.timeout(timeout):
                await asyncio.wait({answer})
        return answer.result()
    except BaseException:
        if not answer.done():
            answer.cancel()
            await asyncio.wait({answer})
        raise

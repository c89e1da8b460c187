"""A raw two-way pipe between byte channels, used after ``101 Switching Protocols``, and
the switch itself for a proxy (``splice_upgraded``), the same at both hops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from .channel import ByteChannel
from .codec import InformationalResponse, Response
from .connection import HttpConnection

# (front channel, back channel, early bytes from the front, early bytes from the back)
Pipe = Callable[[ByteChannel, ByteChannel, bytes, bytes], Awaitable[None]]


async def _pump(source: ByteChannel, sink: ByteChannel) -> None:
    while data := await source.read():
        await sink.write(data)
    await sink.close()  # pass the half-close on


async def splice(left: ByteChannel, right: ByteChannel) -> None:
    """Copy bytes both ways until both directions have ended; an error aborts both."""
    tasks = [asyncio.create_task(_pump(left, right)), asyncio.create_task(_pump(right, left))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
    except BaseException:
        for task in tasks:
            task.cancel()
        for channel in (left, right):
            with contextlib.suppress(Exception):
                channel.reset()
        raise


def switching_protocols(
    response: Response, headers: list[tuple[bytes, bytes]]
) -> InformationalResponse:
    """The ``101`` for the client: ``headers`` (end to end, already filtered) plus the
    upstream answer's own ``Upgrade`` and ``Connection``, which a proxy must pass on."""
    upgrade = [(k, v) for k, v in response.headers if k in (b"upgrade", b"connection")]
    return InformationalResponse(101, headers + upgrade, response.reason)


async def splice_upgraded(
    front: HttpConnection,
    back: HttpConnection,
    switched: InformationalResponse,
    *,
    pipe: Pipe | None = None,
) -> None:
    """Answer ``front`` with the ``101`` ``switched`` and join the two connections as one
    raw byte pipe until both directions end. What each side's parser had read past its
    head goes across first. ``pipe`` replaces the raw copy (e.g. a bridge that re-frames
    WebSocket messages); it gets the two channels and those early bytes."""
    await front.send(switched)
    early_from_front = front.trailing_data()
    early_from_back = back.trailing_data()
    if pipe is not None:
        await pipe(front.channel, back.channel, early_from_front, early_from_back)
        return
    if early_from_front:
        await back.channel.write(early_from_front)
    if early_from_back:
        await front.channel.write(early_from_back)
    await splice(front.channel, back.channel)

"""A raw two-way pipe between byte channels, used after ``101 Switching Protocols``."""

from __future__ import annotations

import asyncio
import contextlib

from .channel import ByteChannel


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

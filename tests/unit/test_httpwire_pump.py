"""httpwire.pump: the one body pump of both hops, and the response timeout that counts
from the request body's end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent_relay.httpwire.pump import SinkStalled, SourceBroken, pump, receive_after_upload
from tests.support.streams import memory_pair


async def _chunks(count: int, size: int, pause: float = 0.0) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size
        await asyncio.sleep(pause)


async def test_pump_moves_everything_and_counts_it() -> None:
    writer, reader = memory_pair(limit=1024 * 1024)
    moved = await pump(_chunks(10, 1000), writer.write, idle_timeout=1, send_timeout=1)
    assert moved == 10_000
    await writer.close()
    got = b""
    while data := await reader.read():
        got += data
    assert got == b"x" * 10_000


async def test_a_reader_that_stops_reading_is_cut_by_the_send_timeout() -> None:
    writer, _never_read = memory_pair(limit=4096)
    with pytest.raises(SinkStalled):
        await pump(_chunks(100, 4096), writer.write, idle_timeout=5, send_timeout=0.1)


async def test_a_source_that_pauses_is_cut_by_the_idle_timeout() -> None:
    writer, _ = memory_pair()
    with pytest.raises(SourceBroken):
        await pump(_chunks(2, 10, pause=1.0), writer.write, idle_timeout=0.1, send_timeout=5)


async def test_the_response_timeout_counts_from_the_end_of_the_upload() -> None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    uploading = asyncio.create_task(asyncio.sleep(0.3))  # a body longer than the timeout
    loop.call_later(0.35, answer.set_result, "head")
    assert await receive_after_upload(answer, uploading, timeout=0.2) == "head"


async def test_no_answer_after_the_upload_times_out() -> None:
    never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    uploading = asyncio.create_task(asyncio.sleep(0.05))
    with pytest.raises(TimeoutError):
        await receive_after_upload(never, uploading, timeout=0.1)
    assert never.cancelled()


async def test_a_source_that_keeps_coming_outlives_the_idle_timeout() -> None:
    # One timer serves the whole pump: a body that takes longer in all than the idle
    # timeout, with each pause shorter, is not cut.
    writer, _reader = memory_pair(limit=1024 * 1024)
    moved = await pump(_chunks(12, 10, pause=0.05), writer.write, idle_timeout=0.3, send_timeout=1)
    assert moved == 120


async def test_a_stalled_write_after_a_long_read_is_cut_by_the_send_timeout() -> None:
    # The first wait (a read) may last 30 s, the next (a write) 0.1 s: the timer is
    # brought forward for it, and the error says which side stalled.
    writer, _never_read = memory_pair(limit=16)

    async def slow_then_big() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.05)
        yield b"x" * 1024  # fills the pipe
        yield b"x" * 1024  # waits for a reader that never comes

    with pytest.raises(SinkStalled):
        await asyncio.wait_for(
            pump(slow_then_big(), writer.write, idle_timeout=30, send_timeout=0.1), 10
        )


async def test_cancelling_a_pump_from_outside_is_a_cancellation_not_a_timeout() -> None:
    writer, _ = memory_pair()
    started = asyncio.Event()

    async def forever() -> AsyncIterator[bytes]:
        started.set()
        await asyncio.Event().wait()
        yield b""

    task = asyncio.create_task(pump(forever(), writer.write, idle_timeout=0.05, send_timeout=1))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_idle_timeout_inside_an_outer_cancellation_scope_is_still_a_timeout() -> None:
    # The watchdog's own cancellation is told apart from others (asyncio.timeout's rule):
    # inside a task that is not otherwise cancelled it becomes SourceBroken.
    writer, _ = memory_pair()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"a"
        await asyncio.Event().wait()
        yield b""

    async with asyncio.timeout(30):
        with pytest.raises(SourceBroken, match="no data"):
            await pump(stalls(), writer.write, idle_timeout=0.05, send_timeout=1)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

"""The shared task and address helpers."""

from __future__ import annotations

import asyncio

import pytest

from agent_relay.aio import reap
from agent_relay.netaddr import split_host_port


async def _slow_to_stop() -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0.05)  # cleanup that takes a while
        raise


async def test_reap_consumes_the_tasks_outcome() -> None:
    async def fails() -> None:
        raise OSError("upload failed")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await reap(task)  # no raise: the caller decides what the error means
    await reap(None)
    slow = asyncio.create_task(_slow_to_stop())
    await asyncio.sleep(0)
    await reap(slow)
    assert slow.cancelled()


async def test_reap_lets_the_callers_own_cancellation_through() -> None:
    """What relay/proxy.py got wrong with suppress(BaseException) around the await."""
    child = asyncio.create_task(_slow_to_stop())

    async def handler() -> str:
        await asyncio.sleep(0)
        await reap(child)
        return "went on after being cancelled"

    outer = asyncio.create_task(handler())
    await asyncio.sleep(0.01)  # outer is inside reap, waiting for the child's cleanup
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.sleep(0.1)
    assert child.done()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a:1", ("a", 1)), ("[::1]:8080", ("::1", 8080)), ("h:0", ("h", 0))],
)
def test_split_host_port(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value) == expected


@pytest.mark.parametrize("value", ["a", ":80", "a:", "a:x", "a:65536", "a:-1"])
def test_split_host_port_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_host_port(value)


def test_split_host_port_defaults() -> None:
    assert split_host_port(":80", default_host="0.0.0.0") == ("0.0.0.0", 80)  # noqa: S104
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_host_port("a:0", allow_port_zero=False)

"""Run the connector as a process: the status endpoint beside it, and a graceful stop on
SIGTERM or SIGINT (a second signal stops at once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..aio import reap, stop_signals
from ..netaddr import split_host_port
from .connector import Connector
from .status import PAGE_PATH, STATUS_PATH, StatusServer
from .upstream import UpstreamPool

log = logging.getLogger(__name__)


def parse_host_port(value: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``)."""
    try:
        return split_host_port(value)
    except ValueError:
        raise ValueError(f"{option} must be HOST:PORT, got {value!r}") from None


async def run_until_signalled(
    connector: Connector, pool: UpstreamPool, *, status_listen: tuple[str, int] | None
) -> None:
    with stop_signals() as signalled:
        await _run(connector, pool, signalled, status_listen)


async def _run(
    connector: Connector,
    pool: UpstreamPool,
    signalled: asyncio.Event,
    status_listen: tuple[str, int] | None,
) -> None:
    status: StatusServer | None = None
    running = asyncio.create_task(connector.run())
    try:
        if status_listen is not None:
            status = StatusServer(connector.snapshot, trust=connector.trust)
            host, port = await status.start(*status_listen)
            log.info("status: http://%s:%d%s", host, port, STATUS_PATH)
            if connector.trust is not None:
                log.info("pairing page: http://%s:%d%s", host, port, PAGE_PATH)
        await _first(running, signalled)
        if signalled.is_set():
            log.info(
                "stopping: finishing requests in flight for up to %g s (signal again to quit now)",
                connector.config.shutdown_timeout,
            )
            signalled.clear()
            stopping = asyncio.create_task(connector.stop())
            await _first(stopping, signalled)
            if signalled.is_set():
                log.warning("second signal: stopping now")
                stopping.cancel()
                running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    finally:
        await reap(running)
        if status is not None:
            await status.stop()
        await pool.close()


async def _first(task: asyncio.Task[None], event: asyncio.Event) -> None:
    """Wait until ``task`` ends or ``event`` is set."""
    waiter = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()

"""Run the connector as a process: the status endpoint beside it, and a graceful stop on
SIGTERM or SIGINT (a second signal stops at once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from .connector import Connector
from .status import PAGE_PATH, STATUS_PATH, StatusServer
from .upstream import UpstreamPool

log = logging.getLogger(__name__)


def parse_host_port(value: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{option} must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


async def run_until_signalled(
    connector: Connector, pool: UpstreamPool, *, status_listen: tuple[str, int] | None
) -> None:
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, signalled.set)
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
        for sig in signals:
            loop.remove_signal_handler(sig)
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
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

"""Run the connector as a process: the status endpoint beside it, its status in a file
of the data dir (what ``agent-relay host status`` reads), a warning when the local server
is down at start, and a graceful stop on SIGTERM or SIGINT (a second signal stops at
once)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..aio import reap, stop_signals
from ..netaddr import split_host_port
from .connector import Connector
from .status import PAGE_PATH, STATUS_PATH, StatusServer
from .upstream import UpstreamPool, describe_os_error

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"  # in the data dir, while the connector runs
STATUS_FILE_INTERVAL = 1.0


def parse_host_port(value: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``)."""
    try:
        return split_host_port(value)
    except ValueError:
        raise ValueError(f"{option} must be HOST:PORT, got {value!r}") from None


async def run_until_signalled(
    connector: Connector,
    pool: UpstreamPool,
    *,
    status_listen: tuple[str, int] | None,
    status_file: Path | None = None,
    page: PageSettings | None = None,
) -> None:
    with stop_signals() as signalled:
        await _run(connector, pool, signalled, status_listen, status_file, page or PageSettings())


@dataclass(frozen=True, slots=True)
class PageSettings:
    """The status listener's page: Host names besides loopback it may be opened by, and
    the remote web UI's URL when it is not at the relay."""

    allowed_hosts: tuple[str, ...] = ()
    ui_url: str | None = None


async def _run(
    connector: Connector,
    pool: UpstreamPool,
    signalled: asyncio.Event,
    status_listen: tuple[str, int] | None,
    status_file: Path | None,
    page: PageSettings,
) -> None:
    status: StatusServer | None = None
    running = asyncio.create_task(connector.run())
    helpers = [asyncio.create_task(warn_if_upstream_down(pool))]
    if status_file is not None:
        helpers.append(asyncio.create_task(keep_status_file(connector, status_file)))
    try:
        if status_listen is not None:
            status = StatusServer(
                connector.snapshot,
                trust=connector.trust,
                allowed_hosts=page.allowed_hosts,
                ui_url=page.ui_url,
            )
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
        for helper in helpers:
            await reap(helper)
        if status_file is not None:
            _remove(status_file)
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


async def warn_if_upstream_down(pool: UpstreamPool) -> None:
    """One look at the local server at start: a connector whose upstream is down serves
    502s, which is no reason to stay silent about it."""
    try:
        _, writer = await asyncio.wait_for(pool.target.open(), 5)
    except (OSError, TimeoutError) as exc:
        reason = "no answer in 5 s" if isinstance(exc, TimeoutError) else describe_os_error(exc)
        log.warning(
            "the local server %s is not answering (%s): relayed requests get 502 with that "
            "reason until it is up",
            pool.target.url,
            reason,
        )
        return
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def keep_status_file(connector: Connector, path: Path) -> None:
    """The status JSON with our pid, rewritten (atomically) every second."""
    while True:
        document = {**connector.snapshot(), "pid": os.getpid(), "written_at": time.time()}
        _write(path, (json.dumps(document, indent=2) + "\n").encode())
        await asyncio.sleep(STATUS_FILE_INTERVAL)


def _write(path: Path, data: bytes) -> None:
    # A few hundred bytes to the local disk: not worth a thread every second.
    try:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as exc:  # a full or read-only disk must not stop the connector
        log.debug("cannot write %s: %s", path, exc)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)

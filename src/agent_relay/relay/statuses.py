"""The ``hosts.status`` column kept equal to the live tunnels (issue 15 item 4).

Writes are level-triggered, not edge-triggered: a connect or a disconnect only marks the
host as changed, and one writer task writes, for every changed host, what the tunnel
table says *at write time*. So the writes of one host are ordered by construction: the
end of an old connection cannot overwrite the 'online' of the newer one (the newer
connection's generation is what the table holds when the write happens), and many
changes of one host between two writes cost one write. Changes are batched (one
statement per status for every host that changed within a short window: a herd of 1,000
reconnecting hosts costs a few statements, not 1,000). A write that fails (database
down, disk full) keeps its hosts marked and is retried with backoff until it lands; the
first failure is logged with its cause, and the recovery too.

Every ``reconcile_every`` seconds, and after every recovery, a reconcile writes the
whole table: live hosts 'online' (which refreshes ``last_seen_at``), every other host
marked online 'offline'. That also mends what no event could tell us about, e.g. a write
that landed although its connection broke before the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from ..store import Store
from ..store.records import HostStatus

log = logging.getLogger(__name__)

RECONCILE_EVERY = 30.0  # seconds between full reconciles (they refresh last_seen_at too)
BATCH_WINDOW = 0.05  # seconds a change waits for others to share its write
RETRY_FIRST = 0.25  # seconds before the first retry of a failed write; doubles up to
RETRY_CAP = 5.0


class HostStatuses:
    """One writer of host statuses for the relay; ``changed`` is cheap and never blocks."""

    def __init__(
        self,
        store: Store,
        is_online: Callable[[uuid.UUID], bool],
        live_hosts: Callable[[], list[uuid.UUID]],
        *,
        reconcile_every: float | None = None,
        stale_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._is_online = is_online
        self._live_hosts = live_hosts
        self._reconcile_every = reconcile_every
        self._stale_after = stale_after
        self._clock = clock
        self._changed: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self.failing: str | None = None  # the cause of the last failed write, until one lands
        self.writes = 0  # statements that landed (for tests and the bench)

    def changed(self, host_id: uuid.UUID) -> None:
        """The host connected or disconnected: write its status soon."""
        self._changed.add(host_id)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._changed)

    async def run(self) -> None:
        """Write changes as they come, reconcile periodically; never returns."""
        every = RECONCILE_EVERY if self._reconcile_every is None else self._reconcile_every
        next_reconcile = self._clock() + every
        delay = RETRY_FIRST
        while True:
            timeout = max(0.0, next_reconcile - self._clock())
            if not self._changed:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                # that arrives as the event is set (a host leaving during shutdown).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
            self._wake.clear()
            reconcile = self._clock() >= next_reconcile
            if self._changed and not reconcile:
                await asyncio.sleep(BATCH_WINDOW)  # let the herd share the statement
            try:
                if reconcile:
                    await self.reconcile()
                    next_reconcile = self._clock() + every
                else:
                    await self.flush()
            except Exception as exc:  # any failure (disk full, read-only) is retried
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(RETRY_CAP, delay * 2)
                continue
            delay = RETRY_FIRST
            if self.failing is not None:
                log.warning("host status writes work again (after: %s)", self.failing)
                self.failing = None
                next_reconcile = self._clock()  # mend whatever the outage hid

    async def flush(self) -> None:
        """Write the current status of every changed host (raises StoreError; the hosts
        stay marked then)."""
        if not self._changed:
            return
        batch, self._changed = self._changed, set()
        online = [h for h in batch if self._is_online(h)]
        offline = [h for h in batch if not self._is_online(h)]
        try:
            for hosts, status in ((online, HostStatus.ONLINE), (offline, HostStatus.OFFLINE)):
                if hosts:
                    await self._store.set_hosts_status(hosts, status)
                    self.writes += 1
        except BaseException:
            self._changed |= batch  # written again, with the state of then
            raise

    async def reconcile(self) -> int:
        """Statuses := live tunnels for every host; how many were turned offline."""
        batch, self._changed = self._changed, set()  # the reconcile writes them all
        try:
            turned_off = await self._store.reconcile_host_statuses(
                self._live_hosts(), stale_after=self._stale_after
            )
        except BaseException:
            self._changed |= batch
            raise
        self.writes += 1
        if turned_off:
            log.info("reconcile: %d host(s) marked online without a tunnel set offline", turned_off)
        return turned_off

    def _failed(self, exc: Exception) -> None:
        cause = (str(exc) or type(exc).__name__).splitlines()[0]
        if self.failing is None:
            log.warning("cannot write host statuses, retrying until it works: %s", cause)
        self.failing = cause

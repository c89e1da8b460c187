"""Revocation made live at the relay: what is open per login, and a poll for revokes.

A login (an ``auth_sessions`` row) can be revoked by another process: ``agent-relay tokens
revoke`` in stand-alone mode, the remote API in shared mode. Both only write
``auth_sessions.revoked_at``. ``RevocationWatcher`` asks for the logins revoked lately in
one cheap query a second (the same on SQLite and PostgreSQL) and hands new ones to a
callback, which cuts what ``LiveLogins`` says is open for them: proxied exchanges
(WebSockets and streams included) and host control channels.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ..store.errors import StoreError

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
# How far back each poll looks: covers a slow commit and clock skew between the writer of
# revoked_at and this relay (a revoke stamped further in the past is still refused on the
# next load of the login, only not cut live).
LOOKBACK = timedelta(seconds=60)


class RevocationSource(Protocol):
    async def auth_sessions_revoked_since(self, since: datetime) -> list[uuid.UUID]: ...


class LiveLogins:
    """Which running things belong to which login, so that a revoke can end them."""

    def __init__(self) -> None:
        self._tasks: dict[uuid.UUID, set[asyncio.Task[object]]] = {}
        self._closers: dict[uuid.UUID, set[Callable[[], None]]] = {}

    def add_task(self, login: uuid.UUID, task: asyncio.Task[object]) -> None:
        self._tasks.setdefault(login, set()).add(task)

    def discard_task(self, login: uuid.UUID, task: asyncio.Task[object]) -> None:
        tasks = self._tasks.get(login)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._tasks[login]

    def add_closer(self, login: uuid.UUID, closer: Callable[[], None]) -> None:
        self._closers.setdefault(login, set()).add(closer)

    def discard_closer(self, login: uuid.UUID, closer: Callable[[], None]) -> None:
        closers = self._closers.get(login)
        if closers is not None:
            closers.discard(closer)
            if not closers:
                del self._closers[login]

    def cut(self, logins: Iterable[uuid.UUID]) -> int:
        """Cancel the exchanges and close the channels of these logins; returns how many."""
        count = 0
        for login in logins:
            for task in self._tasks.pop(login, set()):
                task.cancel()
                count += 1
            for closer in self._closers.pop(login, set()):
                closer()
                count += 1
        return count

    def __len__(self) -> int:
        return sum(len(t) for t in self._tasks.values()) + sum(
            len(c) for c in self._closers.values()
        )


class RevocationWatcher:
    """Polls for revoked logins and calls ``on_revoked`` once per newly seen one."""

    def __init__(
        self,
        source: RevocationSource,
        on_revoked: Callable[[list[uuid.UUID]], None],
        *,
        interval: float = POLL_INTERVAL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._source = source
        self._on_revoked = on_revoked
        self._interval = interval
        self._clock = clock
        # Logins already handled, with when we first saw them (forgotten after LOOKBACK).
        self._seen: dict[uuid.UUID, float] = {}

    async def poll_once(self) -> list[uuid.UUID]:
        revoked = await self._source.auth_sessions_revoked_since(self._clock() - LOOKBACK)
        now = time.monotonic()
        horizon = now - 2 * LOOKBACK.total_seconds()
        for login in [k for k, seen in self._seen.items() if seen < horizon]:
            del self._seen[login]
        new = [login for login in revoked if login not in self._seen]
        for login in new:
            self._seen[login] = now
        if new:
            self._on_revoked(new)
        return new

    async def run(self) -> None:
        failing = False
        while True:
            try:
                await self.poll_once()
                failing = False
            except StoreError as exc:
                if not failing:
                    log.warning("cannot poll for revoked logins: %s", exc)
                failing = True
            await asyncio.sleep(self._interval)

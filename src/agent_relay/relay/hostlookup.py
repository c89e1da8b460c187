"""The host lookups of concurrent control-channel connects, one query for many.

Every connect needs its host's row (id, stored name and version, pinned key). After a
relay restart the whole fleet connects within a few seconds: instead of one query each,
the connects that arrive while a lookup is in flight share the next one (no timer, so a
lone connect is never delayed).
"""

from __future__ import annotations

import asyncio
import uuid

from ..store import Store
from ..store.records import ConnectingHost

_BATCH = 500  # keys per query (the store's bound)

_Key = tuple[uuid.UUID, str]


class HostLookups:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[_Key, list[asyncio.Future[ConnectingHost | None]]] = {}
        self._running: asyncio.Task[None] | None = None
        self.queries = 0  # for tests and the bench

    async def find(self, user_id: uuid.UUID, machine_id: str) -> ConnectingHost | None:
        """The host ``(user_id, machine_id)``, or None if it was never registered; raises
        what the store raised (StoreUnavailable…)."""
        future: asyncio.Future[ConnectingHost | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault((user_id, machine_id), []).append(future)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            keys = list(self._pending)[:_BATCH]
            batch = {key: self._pending.pop(key) for key in keys}
            try:
                found = await self._store.find_connecting_hosts(keys)
            except Exception as exc:  # each waiter raises it (the connect answers 503)
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            finally:
                self.queries += 1
            for key, futures in batch.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(key))

"""Run the relay: open the store, serve HTTP, stop gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..aio import reap, stop_signals
from ..errors import HttpError
from ..httpwire.server import HttpServer, ServerLimits
from ..store import Store
from ..store.errors import StoreError
from .app import RelayApp
from .auth import Authenticator
from .config import RelayConfig
from .revocation import RevocationWatcher

log = logging.getLogger(__name__)


class RelayService:
    """The relay app behind its HTTP server, with start and graceful stop."""

    def __init__(self, config: RelayConfig, store: Store) -> None:
        self.config = config
        self.store = store
        authenticator = Authenticator(
            config.jwt_secret, store, cache_ttl=config.session_cache_ttl, refusal_ttl=10.0
        )
        self.app = RelayApp(config, store, authenticator)
        self.server = HttpServer(
            self.app.handle,
            self.app.on_error,
            ServerLimits(max_head_size=config.max_head_size),
            render_error=HttpError.body,
        )
        self._status_writer: asyncio.Task[None] | None = None
        self.revocations = RevocationWatcher(store, self.app.revoke_logins)
        self._watcher: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> tuple[str, int]:
        # Hosts marked online by an earlier run are not connected to this one.
        await self.store.mark_all_hosts_offline()
        self.address = await self.server.start(self.config.listen_host, self.config.listen_port)
        self._status_writer = asyncio.create_task(self.app.statuses.run())
        self._watcher = asyncio.create_task(self.revocations.run())
        return self.address

    @property
    def url(self) -> str:
        assert self.address is not None
        host, port = self.address
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop accepting, Go Away to hosts, let in-flight requests finish, then close."""
        timeout = self.config.shutdown_timeout
        await self.server.stop_accepting()
        await self.app.close(timeout)
        await self.server.wait_connections(timeout)
        await reap(self._status_writer)
        # The hosts that just left: one last write (the writer is stopped, so in order).
        with contextlib.suppress(StoreError, TimeoutError):
            async with asyncio.timeout(5):
                await self.app.statuses.flush()
        await reap(self._watcher)
        await self.store.close()


async def run_until_signalled(service: RelayService) -> None:
    with stop_signals() as stop:
        host, port = await service.start()
        log.info("relay listening on %s:%d (database: %s)", host, port, service.store.display_url)
        await stop.wait()
    log.info("shutting down: draining for up to %.0f s", service.config.shutdown_timeout)
    await service.stop()

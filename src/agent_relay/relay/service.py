"""Run the relay: open the store, serve HTTP, stop gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING

from ..aio import reap, stop_signals
from ..errors import HttpError
from ..httpwire.server import Exchange, HttpServer, ServerLimits
from ..store import Store
from ..store.errors import StoreError
from . import allocator
from .app import HEALTH_BODY, RelayApp
from .auth import Authenticator
from .config import ConfigError, RelayConfig, ReplicaConfig
from .errors import not_found
from .revocation import RevocationWatcher

if TYPE_CHECKING:
    from .replicas import Replicas

log = logging.getLogger(__name__)


class MetricsListenError(Exception):
    """The metrics listener (--metrics-listen) could not be opened."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


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
            # Liveness answered ahead of the restart herd (httpwire/acceptor.py).
            fast_answers={b"/health": HEALTH_BODY},
        )
        self._status_writer: asyncio.Task[None] | None = None
        self.revocations = RevocationWatcher(store, self.app.revoke_logins)
        self._watcher: asyncio.Task[None] | None = None
        self._trimmer: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None
        self.replicas: Replicas | None = None
        self.link_address: tuple[str, int] | None = None
        self.metrics_server: HttpServer | None = None
        self.metrics_address: tuple[str, int] | None = None

    async def start(self) -> tuple[str, int]:
        allocator.tune()
        if self.config.replica is None:
            # Hosts marked online by an earlier run are not connected to this one.
            await self.store.mark_all_hosts_offline()
        else:
            await self._join_replicas(self.config.replica)
        self.address = await self.server.start(self.config.listen_host, self.config.listen_port)
        if self.config.metrics_listen is not None:
            self.metrics_server = HttpServer(
                self._serve_metrics,
                self.app.on_error,
                ServerLimits(max_head_size=8 * 1024),
                render_error=HttpError.body,
            )
            try:
                self.metrics_address = await self.metrics_server.start(*self.config.metrics_listen)
            except OSError as exc:
                await self.server.stop_accepting()
                raise MetricsListenError(exc) from exc
        if self.replicas is None:  # with replicas, presence writes the statuses
            self._status_writer = asyncio.create_task(self.app.statuses.run())
        self._watcher = asyncio.create_task(self.revocations.run())
        self._trimmer = asyncio.create_task(allocator.trim_periodically())
        return self.address

    async def _join_replicas(self, replica: ReplicaConfig) -> None:
        """One of several replicas: presence in PostgreSQL and the replica link (the
        others' hosts stay as they are; only ours and the dead replicas' are ours to
        mark)."""
        if self.store.backend != "postgresql":
            raise ConfigError(
                "--replica-address needs PostgreSQL: a relay on SQLite is a single replica "
                "(docs/replicas.md)"
            )
        from ..store.presence import PresenceStore  # asyncpg: only for replicas
        from .link import LinkServer, link_key
        from .replicas import Replicas

        presence = await PresenceStore.open(
            self.config.database_url,
            uuid.uuid4(),
            # Stand-alone owns the database; shared mode tries and, without the
            # privilege, names `agent-relay migrate --replicas`.
            create=True,
        )
        key = link_key(self.config.jwt_secret)
        replicas = Replicas(
            replica,
            presence,
            self.app.registry,
            self.app.metrics,
            key,
            max_stream_window=self.config.max_stream_window,
            keepalive_interval=self.config.keepalive_interval,
            max_head_size=self.config.max_head_size,
        )
        server = LinkServer(
            presence.replica_id,
            key,
            self.app.handle_forwarded,
            self.app.on_error,
            replicas._mux,
            ServerLimits(max_head_size=self.config.max_head_size),
        )
        try:
            self.link_address = await replicas.start(server)
        except BaseException:
            await replicas.stop(0)
            raise
        self.replicas = replicas
        self.app.replicas = replicas

    async def _serve_metrics(self, ex: Exchange) -> None:
        """The metrics listener (--metrics-listen): /metrics and nothing else."""
        if ex.target.partition("?")[0] != "/metrics":
            raise not_found("no such route (this listener serves /metrics only)")
        body = self.app.metrics.render()
        await ex.respond(200, body, content_type=b"text/plain; version=0.0.4")

    @property
    def url(self) -> str:
        assert self.address is not None
        host, port = self.address
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop accepting, Go Away to hosts, let in-flight requests finish, then close."""
        timeout = self.config.shutdown_timeout
        if self.replicas is not None:
            await self.replicas.drain()  # the others wait for our hosts to land there
        await self.server.stop_accepting()
        if self.metrics_server is not None:
            await self.metrics_server.stop_accepting()
        await self.app.close(timeout)
        await self.server.wait_connections(timeout)
        if self.replicas is not None:
            await self.replicas.stop(timeout)
        if self.metrics_server is not None:
            await self.metrics_server.wait_connections(1.0)
        await reap(self._status_writer)
        # The hosts that just left: one last write (the writer is stopped, so in order).
        if self.replicas is None:  # with replicas, presence released them already
            with contextlib.suppress(StoreError, TimeoutError):
                async with asyncio.timeout(5):
                    await self.app.statuses.flush()
        await reap(self._watcher)
        await reap(self._trimmer)
        await self.store.close()


async def run_until_signalled(service: RelayService) -> None:
    with stop_signals() as stop:
        host, port = await service.start()
        log.info("relay listening on %s:%d (database: %s)", host, port, service.store.display_url)
        if service.metrics_address is not None:
            log.info("metrics: http://%s:%d/metrics", *service.metrics_address)
        await stop.wait()
    log.info("shutting down: draining for up to %.0f s", service.config.shutdown_timeout)
    await service.stop()

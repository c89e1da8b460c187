"""Several relay replicas behind one address (docs/replicas.md): where a host is, and the
way to it when it is on another replica.

A replica writes its presence (store/presence.py) as hosts connect and leave, heartbeats,
sweeps the presence of replicas that went quiet, and hears every change by NOTIFY: a host
now held elsewhere is closed here at once (a reconnect is a takeover), and a request
waiting for a host that is between replicas goes on as soon as the host lands somewhere.
A request for a host on another replica goes over the replica link (link.py), at most one
hop: the replica that receives it over the link answers it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

from ..httpwire.server import ServerLimits
from ..store.errors import StoreError
from ..store.presence import Location, PresenceChange, PresenceStore, Whereabouts
from .config import ReplicaConfig
from .errors import not_found, unavailable
from .link import LinkPool, LinkServer, link_mux_config
from .metrics import RelayMetrics
from .registry import Tunnel, TunnelRegistry

log = logging.getLogger(__name__)

_MAX_KNOWN = 200_000  # hosts whose whereabouts are kept in memory


@dataclass(frozen=True, slots=True)
class Route:
    """Where one proxied request goes: a local tunnel, or a link to the replica holding
    the host (``via`` is that replica's id)."""

    tunnel: Tunnel
    via: uuid.UUID | None = None


class Replicas:
    """One replica's part in the group; owned by RelayService, asked by RelayApp."""

    def __init__(
        self,
        config: ReplicaConfig,
        presence: PresenceStore,
        registry: TunnelRegistry,
        metrics: RelayMetrics,
        key: bytes,
        *,
        max_stream_window: int,
        keepalive_interval: float,
        max_head_size: int,
    ) -> None:
        self.config = config
        self.presence = presence
        self.replica_id = presence.replica_id
        self.registry = registry
        self.metrics = metrics
        self._key = key
        mux = link_mux_config(max_stream_window, keepalive_interval)
        self.links = LinkPool(self.replica_id, key, mux)
        self._mux = mux
        self._limits = ServerLimits(max_head_size=max_head_size)
        self.server: LinkServer | None = None
        self.address: tuple[str, int] | None = None
        self._generations: dict[Tunnel, int] = {}
        self._peers: dict[uuid.UUID, str] = {}  # live replicas and their link addresses
        self._where: dict[uuid.UUID, tuple[Location, float]] = {}  # host -> (where, when)
        self._changed: dict[uuid.UUID, asyncio.Event] = {}
        self._link_tunnels: dict[uuid.UUID, Tunnel] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.draining = False

    # ----------------------------------------------------------------- life cycle

    async def start(self, server: LinkServer) -> tuple[str, int]:
        self.server = server
        self.address = await server.start(self.config.listen_host, self.config.listen_port)
        await self.presence.listen(self._on_change)
        await self.presence.join(self.config.name or str(self.replica_id), self.config.advertise)
        await self.presence.sweep(self.config.ttl, orphans=True)
        await self._refresh_peers()
        self._tasks.append(asyncio.create_task(self._heartbeat_loop()))
        log.info(
            "replica %s: link on %s:%d, advertised as %s",
            self.replica_id,
            *self.address,
            self.config.advertise,
        )
        return self.address

    async def drain(self) -> None:
        """SIGTERM: our hosts are moving from now on (the others wait for them to land
        instead of forwarding here); the caller then sends Go Away to the hosts."""
        self.draining = True
        with contextlib.suppress(StoreError):
            released = await self.presence.release_all()
            log.info("replica %s draining: %d host(s) released", self.replica_id, released)
        self._generations.clear()

    async def stop(self, timeout: float) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            await self.server.stop(timeout)
        await self.links.close()
        with contextlib.suppress(StoreError):
            await self.presence.leave()
        await self.presence.close()

    async def _heartbeat_loop(self) -> None:
        seen_at = time.monotonic()
        while True:
            await asyncio.sleep(self.config.heartbeat)
            try:
                if not await self.presence.heartbeat():
                    # Judged dead (a long pause): come back, and hold our hosts again.
                    log.warning("replica %s: presence expired; rejoining", self.replica_id)
                    await self.presence.join(
                        self.config.name or str(self.replica_id), self.config.advertise
                    )
                    for tunnel in self.registry.tunnels():
                        if not self.draining and not tunnel.session.closed:
                            await self.hold(tunnel)
                await self.presence.sweep(self.config.ttl)
                await self._refresh_peers()
                if not self.presence.listening:
                    await self.presence.listen(self._on_change)
                    self._where.clear()  # changes were missed meanwhile
                if time.monotonic() - seen_at >= self.config.seen_every:
                    # Presence writes a host's status as it comes and goes; last_seen_at
                    # of the hosts that stay is refreshed here.
                    seen_at = time.monotonic()
                    if not self.draining:
                        await self.presence.seen()
            except StoreError as exc:
                log.warning("replica %s: presence: %s", self.replica_id, exc)
            self.metrics.tunnels.set(len(self.registry))

    async def _refresh_peers(self) -> None:
        peers = dict(await self.presence.replicas(self.config.ttl))
        for gone in set(self._peers) - set(peers):
            self.links.drop(gone)
            self._link_tunnels.pop(gone, None)
        self._peers = peers

    # ----------------------------------------------------------------- hosts here

    async def hold(self, tunnel: Tunnel) -> None:
        """A host connected here: record it (online), which tells the replica that held
        it before to close its channel."""
        generation = await self.presence.hold(tunnel.host_id)
        if self.registry.get(tunnel.host_id) is tunnel:
            self._generations[tunnel] = generation

    async def release(self, tunnel: Tunnel) -> None:
        """A host's channel here ended: released (offline) unless it is held elsewhere."""
        generation = self._generations.pop(tunnel, None)
        if generation is not None:
            await self.presence.release(tunnel.host_id, generation)

    def _on_change(self, change: PresenceChange) -> None:
        now = time.monotonic()
        if len(self._where) >= _MAX_KNOWN:
            self._where.clear()  # rare; a miss costs one query
        if change.replica_id is None:
            self._where[change.host_id] = (
                Location(Whereabouts.MOVING, generation=change.generation),
                now,
            )
        else:
            self._where[change.host_id] = (
                Location(
                    Whereabouts.HELD,
                    change.replica_id,
                    self._peers.get(change.replica_id),
                    change.generation,
                ),
                now,
            )
        event = self._changed.pop(change.host_id, None)
        if event is not None:
            event.set()
        if change.replica_id is None or change.replica_id == self.replica_id:
            return
        local = self.registry.get(change.host_id)
        if local is None:
            return
        ours = self._generations.get(local, 0)
        if ours >= change.generation:
            return  # an older hold's notice, arriving after our newer one
        # Taken over: the host is on another replica now. Forget it here without writing
        # its status (the new replica did), and let its requests in flight finish.
        log.info(
            "host %s moved to replica %s; closing its channel here",
            change.host_id,
            change.replica_id,
        )
        self._generations.pop(local, None)
        self.registry.unregister(local)
        self.metrics.tunnels.set(len(self.registry))
        self.links.spawn(local.session.close(drain_timeout=30))

    # ----------------------------------------------------------------- routing

    async def route(self, host_id: uuid.UUID, *, forwarded: bool) -> Route:
        """The way to ``host_id``. A request that came over the link is answered with
        what is here (one hop); others may wait ``handoff_wait`` for a moving host."""
        deadline = time.monotonic() + self.config.handoff_wait
        while True:
            local = self.registry.get(host_id)
            if local is not None and (forwarded or not self.draining):
                return Route(local)
            if forwarded:
                raise unavailable("host is moving between replicas", retry_after=1)
            where = await self._locate(host_id)
            if where.state is Whereabouts.ABSENT:
                raise not_found("No active relay")
            if (
                where.state is Whereabouts.HELD
                and where.replica_id != self.replica_id
                and where.replica_id is not None
                and where.address
            ):
                link = await self._link_tunnel(where.replica_id, where.address)
                if link is not None:
                    return Route(link, via=where.replica_id)
                # Its replica does not answer (just died?): its hosts will land elsewhere.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise unavailable("host is moving between replicas", retry_after=1)
            event = self._changed.setdefault(host_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await event.wait()
            self._where.pop(host_id, None)  # look again, from the database if need be

    async def _locate(self, host_id: uuid.UUID) -> Location:
        cached = self._where.get(host_id)
        if cached is not None and time.monotonic() - cached[1] < 30.0:
            where = cached[0]
            if where.state is Whereabouts.HELD and where.replica_id in self._peers:
                return Location(
                    where.state, where.replica_id, self._peers[where.replica_id], where.generation
                )
            if where.state is Whereabouts.MOVING:
                return where
        where = await self.presence.locate(host_id, self.config.ttl, self.config.grace)
        if where.state is Whereabouts.HELD:
            self._where[host_id] = (where, time.monotonic())
        return where

    async def _link_tunnel(self, peer: uuid.UUID, address: str) -> Tunnel | None:
        """The link to ``peer`` as a tunnel to proxy over; None when it cannot be had."""
        tunnel = self._link_tunnels.get(peer)
        if (
            tunnel is not None
            and not tunnel.session.closed
            and tunnel.session.remote_go_away is None
        ):
            return tunnel
        try:
            session = await self.links.session(peer, address)
        except Exception as exc:  # refused, timed out, a bad handshake: all the same here
            log.warning("replica link to %s (%s) failed: %s", peer, address, exc)
            self._where.clear()  # what we knew of that replica's hosts is stale
            return None
        tunnel = Tunnel(peer, session, max_streams=self.config.link_streams)
        self._link_tunnels[peer] = tunnel
        return tunnel

"""What the connector is doing, as one line for the log and as JSON on a local endpoint
(``GET /_relay/status``, served only when ``--status-listen`` is given)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..httpwire import HttpProtocolError
from ..httpwire.server import Exchange, HttpServer, ServerLimits

log = logging.getLogger(__name__)

STATUS_PATH = "/_relay/status"


class Phase(StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RETRYING = "retrying"  # waiting out the backoff before the next attempt
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class ConnectorState:
    """Kept up to date by the connector; read by the status endpoint and the log."""

    relay_url: str  # the connect URL without its query; never a token
    machine_id: str
    name: str
    upstream: str
    host_id: str | None = None
    phase: Phase = Phase.STARTING
    connected_since: float | None = None  # wall clock
    connections: int = 0  # successful connects since start
    failed_attempts: int = 0  # in a row, since the last successful connect
    retry_at: float | None = None  # wall clock of the next attempt while retrying
    active_streams: int = 0
    streams_served: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    started_at: float = field(default_factory=time.time)
    clock: Callable[[], float] = time.time

    @property
    def connected(self) -> bool:
        return self.phase is Phase.CONNECTED

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    def error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = self.clock()

    def describe(self) -> str:
        """``connected to … since …`` or ``retrying in 4.2 s: 401 invalid token``."""
        if self.phase is Phase.CONNECTED and self.connected_since is not None:
            return f"connected to {self.relay_url} since {_iso(self.connected_since)}"
        if self.phase is Phase.RETRYING and self.retry_at is not None:
            wait = max(0.0, self.retry_at - self.clock())
            return f"retrying in {wait:.1f} s: {self.last_error or 'disconnected'}"
        if self.phase is Phase.CONNECTING:
            return f"connecting to {self.relay_url}"
        return self.phase.value

    def snapshot(self, pool: dict[str, int] | None = None) -> dict[str, Any]:
        now = self.clock()
        connected_for = (
            round(now - self.connected_since, 3)
            if self.connected and self.connected_since is not None
            else None
        )
        return {
            "connected": self.connected,
            "state": self.phase.value,
            "status": self.describe(),
            "relay_url": self.relay_url,
            "host_id": self.host_id,
            "machine_id": self.machine_id,
            "name": self.name,
            "upstream": self.upstream,
            "uptime_seconds": round(now - self.started_at, 3),
            "connected_since": _iso(self.connected_since) if self.connected else None,
            "connected_seconds": connected_for,
            "reconnects": self.reconnects,
            "failed_attempts": self.failed_attempts,
            "next_retry_in_seconds": (
                round(max(0.0, self.retry_at - now), 3)
                if self.phase is Phase.RETRYING and self.retry_at is not None
                else None
            ),
            "active_streams": self.active_streams,
            "streams_served": self.streams_served,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "upstream_pool": pool,
        }


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StatusServer:
    """``GET /_relay/status`` on a local address; everything else is a JSON 404."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot
        self._server = HttpServer(
            self._handle,
            self._on_error,
            ServerLimits(max_head_size=8 * 1024, keepalive_timeout=15.0, head_timeout=10.0),
        )
        self.address: tuple[str, int] | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.address = await self._server.start(host, port)
        return self.address

    async def stop(self) -> None:
        await self._server.stop_accepting()
        await self._server.wait_connections(1.0)

    async def _handle(self, ex: Exchange) -> None:
        path = ex.target.partition("?")[0]
        if path != STATUS_PATH:
            await ex.respond_json(404, {"error": f"no such route; try GET {STATUS_PATH}"})
        elif ex.method not in ("GET", "HEAD"):
            await ex.respond_json(405, {"error": "use GET"}, headers=[(b"allow", b"GET, HEAD")])
        else:
            await ex.respond_json(200, self._snapshot(), headers=[(b"cache-control", b"no-store")])

    async def _on_error(self, ex: Exchange, exc: BaseException) -> None:
        if isinstance(exc, HttpProtocolError):
            await ex.respond_json(exc.status, {"error": str(exc) or "bad request"})
            return
        log.error("status endpoint failed: %r", exc)
        await ex.respond_json(500, {"error": "internal error"})

"""What the connector is doing, as one line for the log and as JSON on a local endpoint
(``GET /_relay/status``, served only when ``--status-listen`` is given). With the trust
layer on, the same local listener serves a small page (``GET /_relay/``) showing the
current pairing code, a button to make one, and the paired clients with a revoke button;
the same actions as JSON: ``POST /_relay/pair-code``, ``GET /_relay/clients``,
``POST /_relay/clients/{id}/revoke``."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..httpwire import HttpProtocolError
from ..httpwire.server import Exchange, HttpServer, ServerLimits
from ..trust.host import TrustHost

log = logging.getLogger(__name__)

STATUS_PATH = "/_relay/status"
PAGE_PATH = "/_relay/"
PAIR_CODE_PATH = "/_relay/pair-code"
CLIENTS_PATH = "/_relay/clients"


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

    def __init__(
        self, snapshot: Callable[[], dict[str, Any]], trust: TrustHost | None = None
    ) -> None:
        self._snapshot = snapshot
        self._trust = trust
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
        if self._trust is not None and path != STATUS_PATH and path.startswith("/_relay"):
            await self._handle_trust(ex, path, self._trust)
            return
        if path != STATUS_PATH:
            await ex.respond_json(404, {"error": f"no such route; try GET {STATUS_PATH}"})
        elif ex.method not in ("GET", "HEAD"):
            await ex.respond_json(405, {"error": "use GET"}, headers=[(b"allow", b"GET, HEAD")])
        else:
            await ex.respond_json(200, self._snapshot(), headers=[(b"cache-control", b"no-store")])

    async def _handle_trust(self, ex: Exchange, path: str, trust: TrustHost) -> None:
        form = (ex.header(b"content-type") or b"").startswith(b"application/x-www-form-urlencoded")
        if ex.method == "POST":
            await ex.read_body()
            if _cross_site(ex):
                await ex.respond_json(403, {"error": "cross-site request refused"})
                return
        if path in ("/_relay", PAGE_PATH) and ex.method in ("GET", "HEAD"):
            page = _page(self._snapshot(), trust).encode()
            await ex.respond(
                200,
                page,
                content_type=b"text/html; charset=utf-8",
                headers=[(b"cache-control", b"no-store")],
            )
        elif path == PAIR_CODE_PATH and ex.method == "POST":
            code = trust.issue_code()
            if form:
                await ex.respond(303, headers=[(b"location", PAGE_PATH.encode())])
            else:
                await ex.respond_json(
                    200, {"enrollment_code": code.code, "expires_at": int(code.expires_at)}
                )
        elif path == CLIENTS_PATH and ex.method in ("GET", "HEAD"):
            clients = [c.public_info() for c in trust.list_clients()]
            await ex.respond_json(200, {"clients": clients})
        elif path.startswith(CLIENTS_PATH + "/") and path.endswith("/revoke"):
            client_id = path.removeprefix(CLIENTS_PATH + "/").removesuffix("/revoke")
            if ex.method != "POST":
                await ex.respond_json(405, {"error": "use POST"}, headers=[(b"allow", b"POST")])
            elif not trust.revoke(client_id):
                await ex.respond_json(404, {"error": f"no paired client {client_id}"})
            elif form:
                await ex.respond(303, headers=[(b"location", PAGE_PATH.encode())])
            else:
                await ex.respond_json(200, {"client_id": client_id, "revoked": True})
        else:
            await ex.respond_json(404, {"error": f"no such route; try GET {PAGE_PATH}"})

    async def _on_error(self, ex: Exchange, exc: BaseException) -> None:
        if isinstance(exc, HttpProtocolError):
            await ex.respond(exc.status, exc.body(), content_type=b"application/json")
            return
        log.error("status endpoint failed: %r", exc)
        await ex.respond_json(500, {"error": "internal error"})


def _cross_site(ex: Exchange) -> bool:
    """A POST another web site made the owner's browser send (the page has no login)."""
    site = ex.header(b"sec-fetch-site")
    if site is not None and site not in (b"same-origin", b"none"):
        return True
    origin = ex.header(b"origin")
    host = ex.header(b"host")
    return origin is not None and (host is None or origin != b"http://" + host)


def _page(snapshot: dict[str, Any], trust: TrustHost) -> str:
    code = trust.current_code()
    esc = html.escape
    if code is not None:
        left = max(0, round((code.expires_at - time.time()) / 60))
        code_html = f"<p class=code>{esc(code.code)}</p><p>valid {left} more min, single use</p>"
    else:
        code_html = "<p>No pairing code is active.</p>"
    rows = "".join(
        f"<tr><td>{esc(c.client_name or '-')}</td>"
        f"<td>{esc(' / '.join(x for x in (c.client_browser, c.client_os, c.client_device) if x))}"
        f"</td><td><code>{esc(c.client_id)}</code></td><td>"
        f'<form method=post action="{CLIENTS_PATH}/{esc(c.client_id)}/revoke">'
        "<button>Revoke</button></form></td></tr>"
        for c in trust.list_clients()
    )
    clients_html = (
        f"<table><tr><th>name</th><th>device</th><th>id</th><th></th></tr>{rows}</table>"
        if rows
        else "<p>No paired clients.</p>"
    )
    return f"""<!doctype html>
<html><head><meta charset=utf-8><title>agent-relay host</title>
<style>body{{font-family:sans-serif;margin:2em}}
.code{{font:bold 2.5em monospace;letter-spacing:.2em}}
td,th{{padding:.2em .8em;text-align:left}}</style></head><body>
<h1>agent-relay host</h1>
<p>{esc(str(snapshot.get("status", "")))}</p>
<h2>Pairing code</h2>{code_html}
<form method=post action="{PAIR_CODE_PATH}"><button>New pairing code</button></form>
<h2>Paired clients</h2>{clients_html}
</body></html>
"""

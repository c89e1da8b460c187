"""What the connector is doing, as one line for the log and as JSON on a local endpoint
(``GET /_relay/status``, served only when ``--status-listen`` is given). With the trust
layer on, the same local listener serves the host's page (``GET /_relay/``): host id and
relay, tunnel status, "Generate pairing code" with its countdown, a link and QR code that
open the remote web UI's pair screen with host and code filled in, and the paired clients
with revoke; the same actions as JSON: ``POST /_relay/pair-code``, ``GET /_relay/clients``,
``POST /_relay/clients/{id}/revoke``.

The listener has no login: whoever reaches it owns the host. So it answers only requests
addressed to a loopback name (or one configured): a DNS-rebinding page on another name
gets 421; refuses POSTs another site made the browser send (``Origin`` /
``Sec-Fetch-Site``); and never puts the pairing code in the status JSON."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..httpwire import HttpProtocolError
from ..httpwire.server import Exchange, HttpServer, ServerLimits
from ..trust.host import TrustHost
from ..trust.local import LOOPBACK_NAMES, cross_site, host_allowed
from ..trust.store import TrustedClient
from ..web.links import LinkError, pair_link, ui_base
from ..web.qr import svg_qr

log = logging.getLogger(__name__)

STATUS_PATH = "/_relay/status"
PAGE_PATH = "/_relay/"
PAIR_CODE_PATH = "/_relay/pair-code"
CLIENTS_PATH = "/_relay/clients"
SCRIPT_PATH = "/_relay/page.js"
STYLE_PATH = "/_relay/page.css"


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
    """``GET /_relay/status`` on a local address; everything else is a JSON 404.

    ``allowed_hosts``: Host names besides loopback the page may be opened by (a listener
    on a LAN address). ``ui_url``: where the remote web UI lives, when not at the relay.
    """

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        trust: TrustHost | None = None,
        *,
        allowed_hosts: Iterable[str] = (),
        ui_url: str | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._trust = trust
        self._allowed_hosts = LOOPBACK_NAMES | {h.lower() for h in allowed_hosts}
        self._ui_url = ui_url
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
        if not _host_allowed(ex.header(b"host"), self._allowed_hosts):
            await ex.respond_json(421, {"error": "this page answers only on localhost"})
            return
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
        if ex.method not in ("GET", "HEAD"):
            await ex.read_body()
            if _cross_site(ex):
                await ex.respond_json(403, {"error": "cross-site request refused"})
                return
        if path in ("/_relay", PAGE_PATH) and ex.method in ("GET", "HEAD"):
            page = self._page(trust).encode()
            await ex.respond(
                200, page, content_type=b"text/html; charset=utf-8", headers=_PAGE_HEADERS
            )
        elif path == SCRIPT_PATH and ex.method in ("GET", "HEAD"):
            await ex.respond(200, _SCRIPT, content_type=b"text/javascript", headers=_PAGE_HEADERS)
        elif path == STYLE_PATH and ex.method in ("GET", "HEAD"):
            await ex.respond(200, _STYLE, content_type=b"text/css", headers=_PAGE_HEADERS)
        elif path == PAIR_CODE_PATH and ex.method == "POST":
            code = trust.issue_code(time.time())
            if form:
                await ex.respond(303, headers=[(b"location", PAGE_PATH.encode())])
            else:
                await ex.respond_json(
                    200, {"enrollment_code": code.code, "expires_at": int(code.expires_at)}
                )
        elif path == CLIENTS_PATH and ex.method in ("GET", "HEAD"):
            clients = [
                {**c.public_info(), "last_seen": trust.last_seen(c.client_id)}
                for c in trust.list_clients()
            ]
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

    def _page(self, trust: TrustHost) -> str:
        snapshot = self._snapshot()
        ui = self._ui_url or str(snapshot.get("relay_url") or "")
        try:
            ui = ui_base(ui)
        except LinkError:
            ui = ""
        return render_page(snapshot, trust, ui, time.time())


def _host_allowed(host: bytes | None, allowed: frozenset[str]) -> bool:
    return host_allowed(None if host is None else host.decode("latin-1"), allowed)


def _cross_site(ex: Exchange) -> bool:
    headers = {
        name: value.decode("latin-1")
        for name in ("sec-fetch-site", "origin", "host")
        if (value := ex.header(name.encode())) is not None
    }
    return cross_site(headers)


_PAGE_HEADERS = [
    (b"cache-control", b"no-store"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Not no-referrer: with it a browser sends "Origin: null" on the page's own form posts.
    # (The pair link's code is in the fragment, which no Referer ever carries.)
    (b"referrer-policy", b"same-origin"),
]


def _when(moment: float | None, now: float) -> str:
    if moment is None:
        return "not since start"
    ago = max(0, int(now - moment))
    if ago < 60:
        return f"{ago} s ago"
    if ago < 3600:
        return f"{ago // 60} min ago"
    return _iso(moment) or "-"


def render_page(snapshot: dict[str, Any], trust: TrustHost, ui_url: str, now: float) -> str:
    esc = html.escape
    host_id = snapshot.get("host_id")
    code = trust.current_code(now)
    if code is not None:
        left = max(0, int(code.expires_at - now))
        grouped = f"{code.code[:3]} {code.code[3:]}"
        spelled = " ".join(code.code)
        code_html = (
            f'<p class=code aria-label="pairing code {esc(spelled)}" id=code>{esc(grouped)}</p>'
            f'<p>Expires in <span id=countdown data-expires="{int(code.expires_at)}">'
            f"{left // 60}:{left % 60:02d}</span> · single use</p>"
        )
        if host_id and ui_url:
            link = pair_link(ui_url, str(host_id), code.code)
            code_html += (
                f'<p><a id=pair-link href="{esc(link)}">Open the pair screen</a> '
                "on this device, or scan the code with a phone:</p>"
                f'<div class=qr role=img aria-label="QR code of the pair link">'
                f"{svg_qr(link, label='pair link')}</div>"
            )
    else:
        code_html = "<p>No pairing code is active. A code works once, for a few minutes.</p>"

    def device(c: TrustedClient) -> str:
        """What the client said it runs on, short: a browser's whole user agent is noise."""
        said = c.client_device or " / ".join(x for x in (c.client_os, c.client_browser) if x)
        return said if len(said) <= 60 else said[:57] + "…"

    rows = "".join(
        f"<tr><td>{esc(c.client_name or '-')}</td>"
        f"<td>{esc(device(c))}</td><td>{esc(_iso(c.paired_at) or '-') if c.paired_at else '-'}</td>"
        f"<td>{esc(_when(trust.last_seen(c.client_id), now))}</td><td>"
        f'<form method=post action="{CLIENTS_PATH}/{esc(c.client_id)}/revoke">'
        f'<button aria-label="Revoke {esc(c.client_name or c.client_id)}">Revoke</button>'
        "</form></td></tr>"
        for c in trust.list_clients()
    )
    clients_html = (
        "<div class=scroll><table><caption class=sr>Paired clients</caption>"
        "<tr><th scope=col>Name</th><th scope=col>Device</th><th scope=col>Paired</th>"
        f"<th scope=col>Last seen</th><th scope=col><span class=sr>Action</span></th></tr>"
        f"{rows}</table></div>"
        if rows
        else "<p>No paired clients.</p>"
    )
    state = str(snapshot.get("state", ""))
    tunnel = [
        ("Tunnel", str(snapshot.get("status", ""))),
        ("Reconnects", str(snapshot.get("reconnects", 0))),
        ("Requests now", str(snapshot.get("active_streams", 0))),
        ("Requests served", str(snapshot.get("streams_served", 0))),
    ]
    if snapshot.get("last_error"):
        tunnel.append(("Last error", f"{snapshot['last_error']} ({snapshot.get('last_error_at')})"))
    facts = [
        ("Host id", str(host_id or "not known yet")),
        ("Name", str(snapshot.get("name", ""))),
        ("Relay", str(snapshot.get("relay_url", ""))),
        ("Remote web UI", ui_url or "-"),
        ("Local server", str(snapshot.get("upstream", ""))),
    ]

    def dl(items: list[tuple[str, str]]) -> str:
        return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"

    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>agent-relay host</title>
<link rel=stylesheet href="{STYLE_PATH}"><script src="{SCRIPT_PATH}" defer></script></head>
<body><header><h1>agent-relay host</h1>
<p class="state {esc(state)}" id=tunnel-state>{esc(state or "unknown")}</p></header>
<main>
<section aria-labelledby=h-pair><h2 id=h-pair>Pair a phone or browser</h2>{code_html}
<form method=post action="{PAIR_CODE_PATH}">
<button id=new-code>Generate pairing code</button></form>
</section>
<section aria-labelledby=h-clients><h2 id=h-clients>Paired clients</h2>{clients_html}</section>
<section aria-labelledby=h-host><h2 id=h-host>This host</h2>{dl(facts)}</section>
<section aria-labelledby=h-tunnel><h2 id=h-tunnel>Tunnel</h2>{dl(tunnel)}</section>
</main></body></html>
"""


_SCRIPT = b"""// The pairing code's countdown; the page is reloaded when the code runs out.
"use strict";
(function () {
  var el = document.getElementById("countdown");
  if (!el) return;
  var expires = Number(el.dataset.expires) * 1000;
  function tick() {
    var left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    el.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    if (left === 0) { location.reload(); return; }
    setTimeout(tick, 1000);
  }
  tick();
})();
"""

_STYLE = b"""*{box-sizing:border-box}
body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:46rem;padding:1rem;color:#1a1a1a}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .5rem}
header{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;justify-content:space-between}
.state{padding:.15rem .6rem;border-radius:1rem;background:#eee;font-weight:600;margin:0}
.state.connected{background:#d7f2dd;color:#0b5a1c}.state.retrying{background:#fde2cf;color:#7a3200}
.code{font:700 2.4rem ui-monospace,monospace;letter-spacing:.18em;margin:.3rem 0}
.qr svg{width:12rem;height:12rem;max-width:100%}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem .9rem;margin:0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto;position:relative}table{border-collapse:collapse;width:100%}
td,th{padding:.35rem .5rem;text-align:left;border-bottom:1px solid #ddd;vertical-align:top}
button{font:inherit;padding:.5rem 1rem;border-radius:.4rem;border:1px solid #0b4f9c;
background:#0b57b0;color:#fff;cursor:pointer;min-height:44px}
button:focus-visible,a:focus-visible{outline:3px solid #f0a400;outline-offset:2px}
a{color:#0b57b0}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:30rem){dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}.code{font-size:2rem}}
"""

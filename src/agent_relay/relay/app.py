"""The relay's routes: health, metrics, hosts, the control channel, sessions, and the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..errors import HttpError
from ..hostproof import (
    KEY_HEADER,
    PROOF_HEADER,
    HostProofError,
    ProvenKey,
    verify_connect_proof,
)
from ..httpwire.server import Exchange
from ..mux import MuxConfig, MuxSession, ReceiveBudget
from ..store import Store
from ..store.errors import StoreError, StoreUnavailable
from ..store.records import ConnectingHost, HostRecord, HostStatus, ProxyContext
from ..transport.wsserver import (
    WebSocketServerStream,
    handshake,
    open_protocol,
    response_bytes,
)
from .accesslog import log_exchange
from .admission import AdmissionRefused, BufferAdmission, Ticket
from .auth import Authenticator, auth_session_failure, bearer_token
from .config import RelayConfig
from .errors import RelayError, bad_request, forbidden, not_found, unauthorized, unavailable
from .forwarding import FORWARDED_HEADER, with_client_address
from .gate import ConnectGate
from .hostlookup import HostLookups
from .isolation import Isolation
from .metrics import RelayMetrics
from .proxy import ProxyLimits, proxy_request
from .registry import Tunnel, TunnelRegistry
from .revocation import LiveLogins
from .statuses import HostStatuses
from .webui import WebUi

if TYPE_CHECKING:
    from .replicas import Replicas  # presence needs asyncpg: loaded only for replicas

log = logging.getLogger(__name__)

# What the browser SDK reads from an answer when the page is on another origin: the
# signature, the chunked-v1 marker and the host clock of a 401.
_EXPOSED = (
    b"x-vk-resp-ts, x-vk-resp-nonce, x-vk-resp-signature, x-vk-resp-body-signing, "
    b"x-vk-resp-headers, x-vk-host-time"
)
_DEFAULT_METHODS = b"GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
_PROXY_PREFIX = "/v1/relay/h/"
_SESSION_TOUCH_EVERY = 60.0  # seconds between last_used_at writes of a browser session
# Liveness: also answered by the server's acceptor thread, ahead of a restart herd.
HEALTH_BODY = b'{"status":"ok"}'
_BUSY_LOG_EVERY = 10.0  # seconds between log lines about connects refused while busy
# The hop between replicas: the receiving replica applies the isolation rules once.
_LINK_ISOLATION = Isolation(sandbox=False)


@dataclass(slots=True)
class _CachedContext:
    context: ProxyContext
    loaded_at: float
    touched_at: float


class RelayApp:
    def __init__(
        self,
        config: RelayConfig,
        store: Store,
        authenticator: Authenticator,
        registry: TunnelRegistry | None = None,
        metrics: RelayMetrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock  # for the session cache's ages
        self.config = config
        self.store = store
        self.auth = authenticator
        self.registry = registry or TunnelRegistry()
        self.metrics = metrics or RelayMetrics()
        # One receive budget for every host's session (mux/budget.py).
        self.budget = ReceiveBudget(limit=config.buffer_budget)
        # A user's share is half the budget, so that all users together are held back
        # at the budget itself (twice a share), not at twice it (bench/relay_memory.py).
        self.admission = BufferAdmission(max(1, config.buffer_budget // 2))
        self.metrics.held.set_function(
            lambda: self.admission.total.buffered + self.admission.reserved
        )
        self.metrics.admission_waiting.set_function(lambda: self.admission.waiting)
        self.metrics.buffered.set_function(lambda: self.budget.committed)
        self.proxy_limits = ProxyLimits(
            response_timeout=config.response_timeout,
            idle_timeout=config.idle_timeout,
            send_timeout=config.send_timeout,
            total_timeout=config.total_timeout,
            max_response_head=config.max_response_head,
        )
        self.isolation = Isolation(sandbox=config.host_content_sandbox)
        # The UI only on an origin whose proxied answers are sandboxed (docs/security.md).
        self.webui = WebUi() if config.web_ui and config.host_content_sandbox else None
        self._contexts: dict[uuid.UUID, _CachedContext] = {}
        self._loading: dict[uuid.UUID, asyncio.Future[ProxyContext | None]] = {}
        self._forgets = 0  # a load that started before a forget_* must not be cached
        self._background: set[asyncio.Task[None]] = set()
        self.draining = False
        # What each login has open, so that revoking it cuts them (see revocation.py).
        self.live = LiveLogins()
        self.limits = config.limits
        # The one writer of hosts.status (statuses.py); run() by the service.
        self.statuses = HostStatuses(store, self.registry.is_online, self.registry.host_ids)
        # Control-channel handshakes in progress; past the cap a connect gets 503 with
        # Retry-After before any database work, so a restart herd queues in the hosts.
        self.connects = ConnectGate(
            config.max_concurrent_handshakes,
            queue=config.connect_queue,
            max_wait=config.connect_wait,
        )
        self.host_lookups = HostLookups(store)
        self._busy_refused = 0  # refusals since the last log line about them
        self._busy_logged_at = -_BUSY_LOG_EVERY
        self._readiness_problem: str | None = None  # logged when it changes
        self._logins_touched: dict[uuid.UUID, float] = {}  # when each login was last touched
        # Relay session ids the database did not know, until when (a bounded negative cache).
        self._unknown: OrderedDict[uuid.UUID, float] = OrderedDict()
        # Set by RelayService when this relay is one of several replicas (replicas.py).
        self.replicas: Replicas | None = None

    # ----------------------------------------------------------------- dispatch

    async def handle(self, ex: Exchange) -> None:
        ex.extra_headers = _cors_headers(ex)
        path, _, query = ex.target.partition("?")
        if ex.method == "OPTIONS":
            # Every OPTIONS is answered here, preflight or not, with no auth, as the
            # reference does: never forwarded to a host.
            await self._preflight(ex)
        elif path == "/health":
            # Liveness: the process is up and serving. Never fails on a database blip
            # (a liveness probe would restart a healthy relay); /ready says that.
            await ex.respond(200, HEALTH_BODY, content_type=b"application/json")
        elif path == "/ready":
            await self._ready(ex)
        elif path == "/metrics" and self.config.metrics_listen is None:
            await ex.respond(200, self.metrics.render(), content_type=b"text/plain; version=0.0.4")
        elif path == "/v1/hosts":
            _require_method(ex, "GET")
            await self._list_hosts(ex)
        elif path == "/v1/relay/connect":
            _require_method(ex, "GET")
            await self._connect(ex, query)
        elif path.startswith("/v1/relay/create/"):
            _require_method(ex, "POST")
            await self._create_session(ex, path.removeprefix("/v1/relay/create/"))
        elif path.startswith(_PROXY_PREFIX):
            await self._proxy(ex, path, query)
        elif self.webui is not None and self.webui.serves(path):
            await self.webui.serve(ex, path)
        else:
            raise not_found("no such route")

    async def on_error(self, ex: Exchange, exc: BaseException) -> None:
        """The one place where errors become an HTTP status and a JSON body."""
        cause = ""
        if isinstance(exc, HttpError):  # RelayError, AuthError, HttpProtocolError
            error = exc
        elif isinstance(exc, StoreUnavailable):
            error = HttpError(503, "database unavailable", headers=[("retry-after", "5")])
            cause = f" ({exc})"  # the log says why; the client only that it failed
        elif isinstance(exc, StoreError):
            error = HttpError(400, str(exc))
        else:
            log.exception("unexpected error on %s %s", ex.method, _redact(ex.target))
            error = HttpError(500, "internal error")
        status, message = error.status, error.message
        headers = [(k.encode(), v.encode()) for k, v in error.headers]
        level = logging.WARNING if status >= 500 else logging.INFO
        log.log(
            level,
            "%s %s from %s -> %d %s%s",
            ex.method,
            _redact(ex.target),
            ex.peer,
            status,
            message,
            cause,
        )
        if status in (401, 403, 404) and ex.target.startswith(_PROXY_PREFIX):
            self.metrics.count_request(status)
        with contextlib.suppress(Exception):
            await ex.respond(
                status, error.body(), content_type=b"application/json", headers=headers
            )

    # ----------------------------------------------------------------- small routes

    async def _preflight(self, ex: Exchange) -> None:
        headers = [
            (
                b"access-control-allow-methods",
                ex.header(b"access-control-request-method") or _DEFAULT_METHODS,
            ),
            (b"access-control-max-age", b"600"),
        ]
        requested = ex.header(b"access-control-request-headers")
        if requested:
            headers.append((b"access-control-allow-headers", requested))
        await ex.respond(200, headers=headers)

    async def _ready(self, ex: Exchange) -> None:
        """Readiness: the database answers, its writes work (the status writer's last
        write landed), and we accept tunnels (not draining)."""
        problem = await self.store.health_problem()
        if problem is not None:
            database = "unreachable"
        elif self.statuses.failing is not None:
            database, problem = "writes failing", self.statuses.failing
        else:
            database = "ok"
        if problem != self._readiness_problem:
            if problem is not None:
                log.warning("not ready: database %s: %s", database, problem)
            else:
                log.info("ready again: the database answers and its writes work")
            self._readiness_problem = problem
        ready = problem is None and not self.draining
        payload = {
            "status": "ready" if ready else "not ready",
            "database": database,
            "accepting_tunnels": not self.draining,
        }
        await ex.respond_json(200 if ready else 503, payload)

    async def _list_hosts(self, ex: Exchange) -> None:
        identity = await self.auth.authenticate(ex.header(b"authorization"))
        hosts = await self.store.list_hosts_for_user(identity.user_id)
        await ex.respond_json(
            200,
            {
                "hosts": [
                    {
                        "id": str(host.id),
                        "name": host.name,
                        "machine_id": host.machine_id,
                        "online": self._is_online(host),
                        "status": "online" if self._is_online(host) else "offline",
                        "last_seen_at": _iso(host.last_seen_at),
                        "agent_version": host.agent_version,
                        "owned": host.owned,
                    }
                    for host in hosts
                ]
            },
        )

    def _is_online(self, host: HostRecord) -> bool:
        if self.registry.is_online(host.id):
            return True
        # Held by another replica: its status row is kept by presence (replicas.py).
        return self.replicas is not None and host.status is HostStatus.ONLINE

    async def _create_session(self, ex: Exchange, raw_host_id: str) -> None:
        host_id = _parse_uuid(raw_host_id.rstrip("/"), "host id")
        identity = await self.auth.authenticate(ex.header(b"authorization"))
        if not await self.store.can_access_host(identity.user_id, host_id):
            raise forbidden("no access to this host")
        cap = self.limits.max_sessions_per_user
        used_since = datetime.now(UTC) - timedelta(seconds=self.limits.session_idle_timeout)
        if await self.store.count_live_browser_sessions(identity.user_id, used_since) >= cap:
            raise RelayError(
                429,
                f"too many relay sessions: at most {cap} live per user "
                f"(unused ones expire after {self.limits.session_idle_timeout:.0f} s)",
                headers=[("retry-after", "60")],
            )
        session_id = await self.store.create_browser_session(
            host_id, identity.user_id, identity.auth_session_id
        )
        self._touch_login_soon(identity.auth_session_id)
        await ex.respond_json(200, {"session_id": str(session_id)})

    # ----------------------------------------------------------------- control channel

    async def _connect(self, ex: Exchange, query: str) -> None:
        if self.draining:
            raise unavailable("relay is shutting down", retry_after=5)
        retry_after = await self.connects.enter()
        if retry_after is not None:
            await self._refuse_busy(ex, retry_after)
            return
        completed = False
        try:
            if self.draining:  # it began while this connect waited for a place
                raise unavailable("relay is shutting down", retry_after=5)
            tunnel, login, close_revoked = await self._open_tunnel(ex, query)
            completed = True
        finally:
            self.connects.leave(completed=completed)
        host_id, session = tunnel.host_id, tunnel.session
        try:
            await self._host_online(tunnel)
            await session.wait_closed()
        finally:
            self.live.discard_closer(login, close_revoked)
            await session.close()
            unregistered = self.registry.unregister(tunnel)
            if self.replicas is None:
                self.statuses.changed(host_id)  # level-triggered: writes what the table holds
            elif unregistered:
                with contextlib.suppress(StoreError):
                    await self.replicas.release(tunnel)
            self.metrics.tunnels.set(len(self.registry))
            log.info("host %s disconnected: %s", host_id, session.close_reason or "closed")

    async def _refuse_busy(self, ex: Exchange, retry_after: int) -> None:
        """503 + Retry-After for a connect the gate refused: answered here, without a
        log line each (a herd is refused hundreds of times a second): one line at most
        every ``_BUSY_LOG_EVERY`` seconds says how many."""
        self.metrics.connects_busy.inc()
        self._busy_refused += 1
        now = self.clock()
        if now - self._busy_logged_at >= _BUSY_LOG_EVERY:
            log.warning(
                "%d host connect(s) refused with 503 while %d handshakes ran and %d waited "
                "(the herd after a restart?); told to retry in %d s",
                self._busy_refused,
                self.connects.active,
                self.connects.waiting,
                retry_after,
            )
            self._busy_logged_at, self._busy_refused = now, 0
        error = unavailable("too many hosts connecting at once; retry later", retry_after)
        headers = [(k.encode(), v.encode()) for k, v in error.headers]
        await ex.respond(
            503,
            error.body(),
            content_type=b"application/json",
            headers=[*headers, (b"connection", b"close")],
        )

    async def _open_tunnel(
        self, ex: Exchange, query: str
    ) -> tuple[Tunnel, uuid.UUID, Callable[[], None]]:
        """Authenticate, upgrade and register one host's control channel."""
        token = bearer_token(ex.header(b"authorization"))
        identity = await self.auth.verify(token)
        params = parse_qs(query)
        machine_id = _single(params, "machine_id")
        if not machine_id:
            raise bad_request("machine_id is required")
        name = _single(params, "name") or machine_id
        agent_version = _single(params, "agent_version")
        protocol, response = handshake(ex.method, ex.target, ex.request.headers)
        if response.status_code != 101:
            raise bad_request("expected a WebSocket upgrade")
        proven = self._host_key_proof(ex, machine_id, token)
        # One lookup (shared with the connects in flight); a reconnect of a known host
        # whose name and version did not change writes nothing here.
        existing = await self.host_lookups.find(identity.user_id, machine_id)
        if existing is not None:
            # Before anything of the host changes: an impostor must not even rename it.
            _check_host_key(existing, proven)
            host_id = existing.id
            if existing.name != name or existing.agent_version != agent_version:
                await self.store.upsert_host(identity.user_id, machine_id, name, agent_version)
        else:
            host_cap = self.limits.max_hosts_per_user
            # A known host reconnecting is never refused; a new one counts.
            if (
                await self.store.count_hosts_of_user(identity.user_id, other_than=machine_id)
                >= host_cap
            ):
                raise forbidden(f"host limit reached: at most {host_cap} hosts per user")
            host_id = await self.store.upsert_host(
                identity.user_id, machine_id, name, agent_version
            )
        if proven is not None and (existing is None or existing.pinned_key is None):
            pinned = await self.store.pin_host_key(host_id, proven.public_key_b64)
            if pinned is not None and pinned != proven.public_key_b64:
                raise _key_mismatch(host_id)  # another connect pinned first, just now
        self._touch_login_soon(identity.auth_session_id)
        ex.taken_over = True
        ex.responded = True
        channel = ex.channel
        channel.writer.write(response_bytes(protocol))
        await channel.writer.drain()
        frames = open_protocol()
        leftover = ex.http.trailing_data()
        if leftover:
            frames.receive_data(leftover)
        stream = WebSocketServerStream(frames, channel.reader, channel.writer)
        session = MuxSession(
            stream,
            client=False,
            config=self._mux_config(),
            name=f"host-{host_id}",
            budget=self.budget,
        )
        tunnel = Tunnel(host_id, session, max_streams=self.config.max_streams_per_host)
        login = identity.auth_session_id

        def close_revoked() -> None:
            log.info("host %s: its login was revoked; closing its control channel", host_id)
            self._spawn(session.close())

        self.live.add_closer(login, close_revoked)
        replaced = self.registry.register(tunnel)
        if replaced is not None:
            log.info("host %s reconnected; closing its previous control channel", host_id)
            self._spawn(replaced.session.close())
        self.metrics.tunnels.set(len(self.registry))
        self.metrics.connects_upgraded.inc()
        log.info("host %s (%s) connected from %s", host_id, name, ex.peer)
        return tunnel, login, close_revoked

    async def _host_online(self, tunnel: Tunnel) -> None:
        """With replicas, presence writes status and holder in one statement
        (replicas.py), so the replica that took a host over is never overwritten; alone,
        the one status writer does (statuses.py)."""
        if self.replicas is not None:
            await self.replicas.hold(tunnel)
        else:
            self.statuses.changed(tunnel.host_id)

    def _host_key_proof(self, ex: Exchange, machine_id: str, token: str) -> ProvenKey | None:
        def text(name: bytes) -> str | None:
            value = ex.header(name)
            return value.decode("latin-1") if value is not None else None

        try:
            return verify_connect_proof(
                text(KEY_HEADER.encode()),
                text(PROOF_HEADER.encode()),
                machine_id=machine_id,
                token=token,
                now=time.time(),
            )
        except HostProofError as exc:
            raise unauthorized(str(exc)) from None

    def _mux_config(self) -> MuxConfig:
        return MuxConfig(
            accept_backlog=0,  # only the relay opens streams
            max_streams=self.config.max_streams_per_host + 16,
            keepalive_interval=self.config.keepalive_interval,
            max_stream_window=self.config.max_stream_window,
        )

    # ----------------------------------------------------------------- proxy

    async def handle_forwarded(self, ex: Exchange) -> None:
        """A request another replica carried here over the replica link: only the proxy
        route, answered with a host of ours or refused (never forwarded again)."""
        ex.extra_headers = _cors_headers(ex)
        path, _, query = ex.target.partition("?")
        if not path.startswith(_PROXY_PREFIX) or ex.method == "OPTIONS":
            raise not_found("no such route")
        self.metrics.forwarded_in.inc()
        await self._proxy(ex, path, query, forwarded=True)

    async def _proxy(self, ex: Exchange, path: str, query: str, *, forwarded: bool = False) -> None:
        rest = path[len(_PROXY_PREFIX) :]
        raw_host, sep, rest = rest.partition("/s/")
        if not sep:
            raise not_found("no such route")
        raw_session, _, tail = rest.partition("/")
        host_id = _parse_uuid(raw_host, "host id")
        session_id = _parse_uuid(raw_session, "session id")
        target = "/" + tail + ("?" + query if query else "")
        if ex.header(b"host") is None:
            # HTTP/1.0 allows it; the hop to the host is HTTP/1.1, which requires one.
            raise bad_request("a Host header is required")
        local, login, user_id = await self._authorize_proxy(host_id, session_id)
        tunnel, via = local, None
        if self.replicas is not None and (local is None or self.replicas.draining):
            # Elsewhere, or here on a replica that is handing its hosts over.
            route = await self.replicas.route(host_id, forwarded=forwarded)
            tunnel, via = route.tunnel, route.via
        elif local is None:
            raise not_found("No active relay")
        assert tunnel is not None
        ticket = await self._admit(user_id)
        try:
            if via is not None:
                await self._forward(ex, tunnel, login, ticket)
            else:
                await self._proxy_here(ex, tunnel, login, ticket, host_id, target)
        finally:
            ticket.close()

    async def _admit(self, user_id: uuid.UUID) -> Ticket:
        try:
            return await self.admission.admit(user_id)
        except AdmissionRefused as exc:
            self.metrics.admission_refused.inc()
            raise unavailable(str(exc), retry_after=1) from None

    async def _proxy_here(
        self,
        ex: Exchange,
        tunnel: Tunnel,
        login: uuid.UUID,
        ticket: Ticket,
        host_id: uuid.UUID,
        target: str,
    ) -> None:
        if not tunnel.try_acquire():
            raise unavailable("too many concurrent requests for this host", retry_after=1)
        self.metrics.streams.inc()
        started = time.perf_counter()
        task = asyncio.current_task()
        assert task is not None
        self.live.add_task(login, task)  # a revoke cancels the exchange, splice included
        try:
            result = await proxy_request(
                ex.http,
                ex.request,
                target.encode("latin-1"),
                tunnel,
                self.proxy_limits,
                response_headers=ex.extra_headers,
                request_headers=[
                    # The replicas' own marker stays between the replicas.
                    (k, v)
                    for k, v in with_client_address(
                        ex.request.headers, ex.peer, self.config.trusted_proxies
                    )
                    if k != FORWARDED_HEADER
                ],
                isolation=self.isolation,
                ticket=ticket,
            )
        except RelayError as exc:
            self.metrics.count_request(exc.status)
            if self.config.access_log:
                log_exchange(
                    ex.method, host_id, target, exc.status, 0, 0, time.perf_counter() - started
                )
            raise
        finally:
            self.live.discard_task(login, task)
            tunnel.release()
            self.metrics.streams.dec()
        if self.config.access_log:
            elapsed = time.perf_counter() - started
            log_exchange(
                ex.method, host_id, target, result.status, result.bytes_up, result.bytes_down,
                elapsed,
            )  # fmt: skip
        ex.responded = True
        ex.taken_over = result.upgraded
        self.metrics.latency.observe(time.perf_counter() - started)
        self.metrics.count_request(result.status)
        if result.bytes_up:
            self.metrics.bytes_up.inc(result.bytes_up)
        if result.bytes_down:
            self.metrics.bytes_down.inc(result.bytes_down)

    async def _forward(self, ex: Exchange, link: Tunnel, login: uuid.UUID, ticket: Ticket) -> None:
        """Carry the request as it came (path and all) to the replica holding the host,
        over ``link``; that replica checks it again and answers it from its tunnel."""
        if not link.try_acquire():
            raise unavailable("too many requests forwarded to one replica", retry_after=1)
        assert self.replicas is not None
        self.metrics.forwarded_out.inc()
        started = time.perf_counter()
        task = asyncio.current_task()
        assert task is not None
        self.live.add_task(login, task)
        headers = with_client_address(ex.request.headers, ex.peer, self.config.trusted_proxies)
        headers = [(k, v) for k, v in headers if k != FORWARDED_HEADER]
        headers.append((FORWARDED_HEADER, str(self.replicas.replica_id).encode()))
        try:
            result = await proxy_request(
                ex.http,
                ex.request,
                ex.request.target,
                link,
                self.proxy_limits,
                # The other replica adds CORS and isolation; kept as it sends them.
                response_headers=[],
                request_headers=headers,
                isolation=_LINK_ISOLATION,
                ticket=ticket,
            )
        except RelayError as exc:
            self.metrics.count_request(exc.status)
            raise
        finally:
            self.live.discard_task(login, task)
            link.release()
        ex.responded = True
        ex.taken_over = result.upgraded
        self.metrics.forward_latency.observe(time.perf_counter() - started)
        self.metrics.count_request(result.status)

    async def _authorize_proxy(
        self, host_id: uuid.UUID, session_id: uuid.UUID
    ) -> tuple[Tunnel | None, uuid.UUID, uuid.UUID]:
        """The spec's checks, in its order, on at most one database round trip; the
        host's tunnel, the login (auth session) behind the relay session, and its user."""
        context = await self._proxy_context(session_id)
        if context is None or context.revoked_at is not None:
            raise unauthorized("invalid or revoked relay session")
        if context.host_id != host_id:
            raise forbidden("relay session belongs to another host")
        last_used = context.last_used_at or context.created_at
        if datetime.now(UTC) - last_used > timedelta(seconds=self.limits.session_idle_timeout):
            self.forget_session(session_id)
            with contextlib.suppress(StoreError):  # for good: it no longer counts either
                await self.store.revoke_browser_session(session_id)
            raise unauthorized("relay session expired (unused too long); create a new one")
        failure = auth_session_failure(context.auth_session, context.user_id, datetime.now(UTC))
        if failure is not None:
            self.forget_session(session_id)
            with contextlib.suppress(StoreError):
                await self.store.revoke_browser_session(session_id)
            raise unauthorized("the login behind this relay session has ended")
        if not context.user_has_access:
            raise forbidden("no access to this host")
        tunnel = self.registry.get(host_id)  # None: elsewhere or offline (see _proxy)
        assert context.auth_session is not None  # auth_session_failure checked it
        return tunnel, context.auth_session.id, context.user_id

    async def _proxy_context(self, session_id: uuid.UUID) -> ProxyContext | None:
        now = self.clock()
        cached = self._contexts.get(session_id)
        if cached is not None and now - cached.loaded_at < self.config.session_cache_ttl:
            if now - cached.touched_at > _SESSION_TOUCH_EVERY:
                cached.touched_at = now
                self._spawn(self._touch_session(session_id))
            return cached.context
        unknown_until = self._unknown.get(session_id)
        if unknown_until is not None:
            if unknown_until > now:
                return None
            del self._unknown[session_id]
        # One load per session at a time: when an entry expires under load, every request
        # in flight would otherwise query the database for the same row.
        loading = self._loading.get(session_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load_context(session_id))
            self._loading[session_id] = loading
            loading.add_done_callback(partial(self._loaded, session_id))
        return await asyncio.shield(loading)

    async def _load_context(self, session_id: uuid.UUID) -> ProxyContext | None:
        forgets = self._forgets
        context = await self.store.load_proxy_context(session_id)
        cached = self._contexts.get(session_id)
        if context is None:
            self._contexts.pop(session_id, None)
            self._unknown[session_id] = time.monotonic() + self.limits.unknown_session_ttl
            while len(self._unknown) > self.limits.unknown_session_cache_size:
                self._unknown.popitem(last=False)
            return None
        if forgets != self._forgets:
            return context  # revoked meanwhile: answer this wave, keep nothing
        now = self.clock()
        if len(self._contexts) >= self.config.session_cache_size:
            self._contexts.clear()  # rare; cheaper than tracking recency
        touched = cached.touched_at if cached is not None else now
        self._contexts[session_id] = _CachedContext(context, now, touched)
        if cached is None:
            self._spawn(self._touch_session(session_id))
        return context

    def _loaded(self, session_id: uuid.UUID, loading: asyncio.Future[Any]) -> None:
        if self._loading.get(session_id) is loading:
            del self._loading[session_id]
        if not loading.cancelled():
            loading.exception()  # seen, also when every waiter went away

    async def _touch_session(self, session_id: uuid.UUID) -> None:
        with contextlib.suppress(StoreError):
            await self.store.touch_browser_session(session_id)

    def _touch_login_soon(self, auth_session_id: uuid.UUID) -> None:
        """At most one write a minute per login: 1,000 hosts reconnecting on one token
        (or one each) after a restart must not cost a write per connect."""
        now = self.clock()
        touched = self._logins_touched.get(auth_session_id)
        if touched is not None and now - touched < _SESSION_TOUCH_EVERY:
            return
        if len(self._logins_touched) >= self.config.session_cache_size:
            self._logins_touched.clear()
        self._logins_touched[auth_session_id] = now
        self._spawn(self._touch_login(auth_session_id))

    async def _touch_login(self, auth_session_id: uuid.UUID) -> None:
        """Use keeps a login from going idle (stand-alone; the remote API does it when
        it owns the database)."""
        with contextlib.suppress(StoreError):
            await self.store.touch_auth_session(auth_session_id)

    def forget_session(self, session_id: uuid.UUID) -> None:
        """Drop a cached browser session at once (it was revoked)."""
        self._forgets += 1
        self._contexts.pop(session_id, None)
        self._loading.pop(session_id, None)

    def revoke_logins(self, logins: list[uuid.UUID]) -> None:
        """Logins revoked (seen by the RevocationWatcher): forget what is cached for
        them and cut their open exchanges and host control channels."""
        revoked = set(logins)
        self.auth.invalidate(*revoked)
        cached = [
            sid
            for sid, entry in self._contexts.items()
            if entry.context.auth_session is not None and entry.context.auth_session.id in revoked
        ]
        for sid in cached:
            self.forget_session(sid)
        cut = self.live.cut(revoked)
        log.info("%d login(s) revoked: %d open exchange(s) or channel(s) cut", len(revoked), cut)

    def forget_all_sessions(self) -> None:
        self._forgets += 1
        self._contexts.clear()
        self._loading.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self, timeout: float) -> None:
        """Go Away to every host, give their in-flight streams ``timeout`` to finish."""
        self.draining = True
        self.connects.close()  # connects waiting for a place are refused now
        tunnels = self.registry.tunnels()
        await asyncio.gather(
            *(t.session.close(drain_timeout=timeout) for t in tunnels), return_exceptions=True
        )
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)


# --------------------------------------------------------------------- helpers


def _require_method(ex: Exchange, method: str) -> None:
    if ex.method != method:
        raise RelayError(405, f"use {method}", headers=[("allow", method)])


# Every proxied request names its host and session: parse each id string once, not per
# request (bounded; a malformed id raises, and is not kept).
_uuid_of = lru_cache(maxsize=4096)(uuid.UUID)


def _parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return _uuid_of(value)
    except ValueError:
        raise bad_request(f"invalid {what}") from None


def _check_host_key(host: ConnectingHost, proven: ProvenKey | None) -> None:
    """A host with a pinned key connects only with a proof by that key."""
    pinned = host.pinned_key
    if pinned is None:
        return  # never proven (a reference host, or the first proven connect)
    if proven is None:
        raise forbidden(
            f"host {host.id} is bound to a host key and this connect proves none "
            "(an older connector, or not the host's own); "
            "to re-bind it: agent-relay hosts reset-key " + str(host.id)
        )
    if not hmac.compare_digest(pinned, proven.public_key_b64):
        raise _key_mismatch(host.id)


def _key_mismatch(host_id: uuid.UUID) -> RelayError:
    return forbidden(
        f"host {host_id} is bound to another host key (a different data directory, or not "
        "the host's own connector); if the host's key was replaced on purpose: "
        f"agent-relay hosts reset-key {host_id}"
    )


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    value = values[0].strip()
    if len(value) > 255 or any(ord(c) < 32 for c in value):
        raise bad_request(f"invalid {name}")
    return value or None


def _cors_headers(ex: Exchange) -> list[tuple[bytes, bytes]]:
    origin = ex.header(b"origin")
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", _EXPOSED),
        (b"vary", b"origin, access-control-request-method, access-control-request-headers"),
    ]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _redact(target: str) -> str:
    """Paths carry session ids, which grant access: keep them out of logs."""
    if target.startswith(_PROXY_PREFIX):
        host, _, _ = target[len(_PROXY_PREFIX) :].partition("/")
        return f"{_PROXY_PREFIX}{host}/s/…"
    return target.partition("?")[0]

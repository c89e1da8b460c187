"""The connector's loop: dial the relay, serve the yamux streams it opens, and after any
failure wait (jittered backoff) and dial again, with a fresh token each time, until
stopped. Stopping is graceful: Go Away, in-flight requests finish, then close."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection

from .. import __version__
from ..hostproof import connect_proof
from ..mux import GoAwayCode, MuxConfig, MuxSession, MuxStream, SessionClosedError
from ..tls import tls_context
from ..tokens import TokenError, TokenSource
from ..transport import WebSocketByteStream
from ..trust.host import TrustHost
from .backoff import Backoff, BackoffPolicy
from .dial import DialError, connect_url, dial
from .forward import ForwardLimits, serve_stream
from .hostid import look_up_host_id
from .status import ConnectorState, Phase
from .upstream import UpstreamPool

if TYPE_CHECKING:
    from ..webrtc.answerer import WebRtcAnswerer

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    relay_url: str  # the relay's base URL, e.g. https://relay.example
    machine_id: str
    name: str
    agent_version: str = __version__
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    open_timeout: float = 15.0  # WebSocket handshake
    shutdown_timeout: float = 25.0  # for in-flight requests when stopping
    mux: MuxConfig = field(default_factory=MuxConfig)
    forward: ForwardLimits = field(default_factory=ForwardLimits)
    look_up_host_id: bool = True  # ask the relay's GET /v1/hosts for our id (status only)
    ca_file: Path | None = None  # a CA to trust beside the system's, for wss:// and https://
    # Proves this host at every connect (hostproof.py), so the relay can bind the host to
    # it; None connects without a proof, as the reference host does.
    host_key: Ed25519PrivateKey | None = None


class Connector:
    """Keeps one control channel to the relay up and serves it from ``pool``."""

    def __init__(
        self,
        config: ConnectorConfig,
        tokens: TokenSource,
        pool: UpstreamPool,
        *,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random.random,
        trust: TrustHost | None = None,
        webrtc: WebRtcAnswerer | None = None,
    ) -> None:
        """``trust``: require signed requests and sign the answers (None: forward as is,
        ``--allow-unsigned``)."""
        self.config = config
        self.trust = trust
        self.webrtc = webrtc  # answers POST /api/webrtc/offer (needs trust)
        self.url = connect_url(
            config.relay_url,
            machine_id=config.machine_id,
            name=config.name,
            agent_version=config.agent_version,
        )
        self.state = ConnectorState(
            relay_url=self.url.partition("?")[0],
            machine_id=config.machine_id,
            name=config.name,
            upstream=pool.target.url,
        )
        self._tokens = tokens
        self._tls: ssl.SSLContext = tls_context(config.ca_file)
        self.pool = pool
        self._clock = clock
        self._backoff = Backoff(config.backoff, clock=clock, random=random)
        self._stop = asyncio.Event()
        self._stopping = False
        self._running = False
        self._finished = asyncio.Event()
        self._session: MuxSession | None = None
        self._relay_went_away = False
        self._streams: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()

    def _host_proof(self, token: str) -> dict[str, str]:
        key = self.config.host_key
        if key is None:
            return {}
        # Wall-clock time: the relay compares it with its own.
        return connect_proof(key, machine_id=self.config.machine_id, token=token, now=time.time())

    def snapshot(self) -> dict[str, Any]:
        """The status endpoint's JSON."""
        snapshot = self.state.snapshot(self.pool.stats())
        trust = self.trust
        if trust is None:
            snapshot["trust"] = {"signatures_required": False}
        else:
            code = trust.current_code(time.time())
            snapshot["trust"] = {
                "signatures_required": True,
                "paired_clients": len(trust.list_clients()),
                # Whether one is active, never the code: it is a secret of the local page.
                "enrollment_code_active": code is not None,
                "enrollment_code_expires_in": (
                    round(code.expires_at - time.time()) if code else None
                ),
            }
        return snapshot

    # ----------------------------------------------------------------- the loop

    async def run(self) -> None:
        """Stay connected until :meth:`stop`."""
        self._running = True
        if self.trust is not None:
            self._spawn(self._sync_trust(self.trust))
        log.info(
            "host connector: relay %s, local server %s, name %r, machine id %s",
            self.state.relay_url,
            self.pool.target.url,
            self.config.name,
            self.config.machine_id,
        )
        try:
            while not self._stopping:
                attempt = await self._attempt()
                if attempt is None:
                    continue
                websocket, token = attempt
                if self._stopping:
                    await websocket.close()
                    break
                ended = await self._serve(websocket, token)
                if self._stopping:
                    break
                # A Go Away is a relay stopping on purpose: it restarts, come back soon.
                delay = self._backoff.disconnected(restarting=self._relay_went_away)
                log.warning("retrying in %.1f s: %s", delay, ended)
                await self._wait(delay)
        finally:
            for task in self._background:
                task.cancel()
            self.state.phase = Phase.STOPPED
            self._finished.set()

    async def _attempt(self) -> tuple[ClientConnection, str] | None:
        """One dial; on failure, log it, wait the backoff and return None."""
        self.state.phase = Phase.CONNECTING
        if self.state.failed_attempts == 0:
            log.info("connecting to %s", self.state.relay_url)
        try:
            token = await self._unless_stopped(self._tokens.get())
            if token is None:
                return None
            websocket = await self._unless_stopped(
                dial(
                    self.url,
                    token,
                    open_timeout=self.config.open_timeout,
                    tls=self._tls,
                    extra_headers=self._host_proof(token),
                )
            )
        except (TokenError, DialError) as exc:
            refused = isinstance(exc, DialError) and exc.refused
            told = exc.retry_after if isinstance(exc, DialError) and not refused else None
            if told is not None:
                delay = self._backoff.told(told)
            else:
                restarting = isinstance(exc, DialError) and exc.nothing_listens
                delay = self._backoff.failed(refused=refused, restarting=restarting)
            self.state.failed_attempts += 1
            self.state.error(str(exc))
            if refused and "host key" in str(exc):
                detail = str(exc)  # the relay says which key and how to re-bind
            elif refused:
                detail = f"{exc} (the relay refused the token from {self._tokens.description})"
            elif isinstance(exc, TokenError):
                detail = f"no token: {exc}"
            else:
                detail = f"cannot connect to {self.state.relay_url}: {exc}"
            log.warning("retrying in %.1f s: %s", delay, detail)
            await self._wait(delay)
            return None
        if websocket is None:
            return None
        return websocket, token

    async def _wait(self, delay: float) -> None:
        self.state.phase = Phase.RETRYING
        self.state.retry_at = self.state.clock() + delay
        await self._unless_stopped(asyncio.sleep(delay))
        self.state.retry_at = None

    async def _unless_stopped(self, coro: Coroutine[Any, Any, T]) -> T | None:
        """``coro``'s result, or None when :meth:`stop` comes first (it is cancelled)."""
        if self._stopping:
            coro.close()
            return None
        task = asyncio.create_task(coro)
        stopped = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled():
            return None
        return task.result()

    # ----------------------------------------------------------------- serving

    async def _serve(self, websocket: ClientConnection, token: str) -> str:
        """Serve the relay's streams until the session ends; what ended it."""
        session = MuxSession(
            WebSocketByteStream(websocket), client=True, config=self.config.mux, name="relay"
        )
        self._session = session
        self._backoff.connected()
        connected_at = self._clock()
        state = self.state
        state.phase = Phase.CONNECTED
        state.connected_since = state.clock()
        state.connections += 1
        state.failed_attempts = 0
        log.info("%s (name %r)", state.describe(), self.config.name)
        if self.config.look_up_host_id:
            self._spawn(self._find_host_id(token))
        try:
            while True:
                try:
                    stream = await session.accept_stream()
                except SessionClosedError:
                    break
                task = asyncio.create_task(self._handle(stream), name=f"stream-{stream.stream_id}")
                self._streams.add(task)
                task.add_done_callback(self._streams.discard)
        finally:
            self._session = None
            # Streams of a dead session cannot be answered any more.
            leftovers = set(self._streams)
            for task in leftovers:
                task.cancel()
            if leftovers:
                await asyncio.wait(leftovers)
            await session.close()
        self._relay_went_away = session.remote_go_away is not None
        if session.remote_go_away is not None:
            reason = f"the relay ended the session (Go Away: {_go_away(session.remote_go_away)})"
        else:
            reason = session.close_reason or "the relay closed the connection"
        state.error(f"disconnected: {reason}")
        return f"disconnected after {_duration(self._clock() - connected_at)}: {reason}"

    async def _handle(self, stream: MuxStream) -> None:
        state = self.state
        state.active_streams += 1
        state.streams_served += 1
        try:
            await serve_stream(
                stream, self.pool, self.config.forward, self.trust, webrtc=self.webrtc
            )
        except Exception:
            log.exception("unexpected error while serving a relayed request")
            stream.reset()
        finally:
            state.active_streams -= 1

    async def _sync_trust(self, trust: TrustHost) -> None:
        """Pick up clients revoked by another process (``agent-relay host clients
        revoke``): their sessions end and their WebSockets close within a second."""
        while True:
            await asyncio.sleep(1.0)
            try:
                ended = trust.sync()
            except Exception:
                log.exception("cannot read the trusted clients")
                continue
            if ended:
                log.info("trust: %d signing session(s) ended by a revocation", len(ended))

    async def _find_host_id(self, token: str) -> None:
        host_id = await look_up_host_id(
            self.config.relay_url, token, self.config.machine_id, tls=self._tls
        )
        if host_id is not None:
            if host_id != self.state.host_id:
                log.info("host id at the relay: %s", host_id)
            self.state.host_id = host_id

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ----------------------------------------------------------------- stopping

    async def stop(self, timeout: float | None = None) -> None:
        """Refuse new requests (Go Away), let the ones in flight finish for up to
        ``timeout`` seconds (default: the config's), close, and wait for :meth:`run`."""
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        if not self._stopping:
            self._stopping = True
            self.state.phase = Phase.STOPPING
            self._stop.set()
            session = self._session
            if session is not None and not session.closed:
                session.go_away()
                pending = set(self._streams)
                if pending:
                    log.info(
                        "stopping: %d request(s) in flight, waiting up to %g s",
                        len(pending),
                        timeout,
                    )
                    _, pending = await asyncio.wait(pending, timeout=timeout)
                    if pending:
                        log.warning("stopping: cutting %d request(s) still running", len(pending))
                await session.close()
            log.info("stopped")
        if self._running:
            await self._finished.wait()


def _go_away(code: int) -> str:
    try:
        return GoAwayCode(code).name.lower().replace("_", " ")
    except ValueError:
        return f"code {code}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"

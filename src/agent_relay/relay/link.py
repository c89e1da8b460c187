"""The replica link: one WebSocket per pair of replicas, yamux over it, one stream per
forwarded request (docs/replicas.md).

It listens on an address of its own (``--replica-listen``), never on the public port, and
takes only a peer that proves it holds the link key: HKDF-SHA256 of the relay's JWT secret
with a label of its own, so the key signs nothing else and the JWT secret never crosses
the wire. The proof is an HMAC over (from replica, to replica, time): it is good for one
receiving replica and for a short while only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from websockets.asyncio.client import connect as ws_connect

from ..errors import HttpError
from ..httpwire import HttpConnection
from ..httpwire.channel import SocketChannel
from ..httpwire.server import Exchange, HttpServer, ServerLimits
from ..mux import MuxConfig, MuxSession, MuxStream, SessionClosedError
from ..transport import WebSocketByteStream
from ..transport.wsserver import WebSocketServerStream, handshake, open_protocol, response_bytes
from .auth import JwtSecret
from .errors import RelayError, forbidden, not_found

log = logging.getLogger(__name__)

LINK_PATH = "/v1/replica/link"
LINK_HEADER = b"x-agent-relay-link"
_LABEL = b"agent-relay replica link v1"
PROOF_WINDOW = 30.0  # seconds a proof is good for, either side of the receiver's clock

ForwardedHandler = Callable[[Exchange], Awaitable[None]]
ErrorHandler = Callable[[Exchange, BaseException], Awaitable[None]]


def link_key(secret: JwtSecret) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(secret.key)


def link_proof(key: bytes, sender: uuid.UUID, receiver: uuid.UUID, at: int) -> str:
    message = f"{sender}\n{receiver}\n{at}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def proof_header(key: bytes, sender: uuid.UUID, receiver: uuid.UUID) -> str:
    at = int(time.time())
    return f"v1 {sender} {receiver} {at} {link_proof(key, sender, receiver, at)}"


def check_proof(
    key: bytes, receiver: uuid.UUID, value: bytes | None, now: float | None = None
) -> uuid.UUID:
    """The sending replica's id; RelayError 403 for anything but a fresh, valid proof."""
    if value is None:
        raise forbidden("replica link: no proof")
    parts = value.decode("latin-1").split(" ")
    if len(parts) != 5 or parts[0] != "v1":
        raise forbidden("replica link: malformed proof")
    try:
        sender, to, at = uuid.UUID(parts[1]), uuid.UUID(parts[2]), int(parts[3])
    except ValueError:
        raise forbidden("replica link: malformed proof") from None
    expected = link_proof(key, sender, to, at)
    if not hmac.compare_digest(expected.encode(), parts[4].encode("latin-1")):
        raise forbidden("replica link: bad proof")
    if to != receiver:
        raise forbidden("replica link: proof is for another replica")
    if abs((time.time() if now is None else now) - at) > PROOF_WINDOW:
        raise forbidden("replica link: stale proof")
    return sender


def link_mux_config(max_stream_window: int, keepalive_interval: float) -> MuxConfig:
    return MuxConfig(
        accept_backlog=1024,
        max_streams=65_536,
        keepalive_interval=keepalive_interval,
        max_stream_window=max_stream_window,
    )


class LinkServer:
    """Accepts links from other replicas and serves each stream as one request."""

    def __init__(
        self,
        replica_id: uuid.UUID,
        key: bytes,
        handler: ForwardedHandler,
        on_error: ErrorHandler,
        mux_config: MuxConfig,
        limits: ServerLimits,
    ) -> None:
        self.replica_id = replica_id
        self._key = key
        self._handler = handler
        self._on_error = on_error
        self._mux_config = mux_config
        self._limits = limits
        self.server = HttpServer(self._handle, self._refuse, limits, render_error=HttpError.body)
        self._sessions: set[MuxSession] = set()
        self._streams: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        return await self.server.start(host, port)

    async def stop(self, timeout: float) -> None:
        """No new links; forwarded requests in flight get ``timeout`` to finish."""
        await self.server.stop_accepting()
        if self._streams:
            await asyncio.wait(set(self._streams), timeout=timeout)
        for session in list(self._sessions):
            with contextlib.suppress(Exception):
                await session.close()
        await self.server.wait_connections(1.0)

    async def _refuse(self, ex: Exchange, exc: BaseException) -> None:
        error = exc if isinstance(exc, HttpError) else HttpError(500, "internal error")
        if not isinstance(exc, HttpError):
            log.exception("replica link: unexpected error")
        with contextlib.suppress(Exception):
            await ex.respond(error.status, error.body(), content_type=b"application/json")

    async def _handle(self, ex: Exchange) -> None:
        if ex.target.partition("?")[0] != LINK_PATH:
            raise not_found("no such route")
        if ex.method != "GET":
            raise RelayError(405, "use GET", headers=[("allow", "GET")])
        sender = check_proof(self._key, self.replica_id, ex.header(LINK_HEADER))
        protocol, response = handshake(ex.method, ex.target, ex.request.headers)
        if response.status_code != 101:
            raise RelayError(400, "expected a WebSocket upgrade")
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
            stream, client=False, config=self._mux_config, name=f"link-from-{sender}"
        )
        self._sessions.add(session)
        log.info("replica link from %s (%s) up", sender, ex.peer)
        try:
            while True:
                try:
                    mux_stream = await session.accept_stream()
                except SessionClosedError:
                    break
                task = asyncio.create_task(self._serve_stream(mux_stream))
                self._streams.add(task)
                task.add_done_callback(self._streams.discard)
        finally:
            self._sessions.discard(session)
            await session.close()
            log.info("replica link from %s down", sender)

    async def _serve_stream(self, stream: MuxStream) -> None:
        http = HttpConnection(stream, client=False, max_head_size=self._limits.max_head_size)
        try:
            request = await http.receive_request()
            if request is None:
                stream.reset()
                return
            # The sending replica set X-Forwarded-For to the real client (never the
            # client's own); it is the peer here.
            peer = next(
                (v.decode("latin-1") for k, v in request.headers if k == b"x-forwarded-for"),
                "replica",
            )
            # A stream is no socket; only the proxy route runs here, which never reads
            # ``channel.writer`` (the control channel's takeover does, and is refused).
            ex = Exchange(http, request, cast(SocketChannel, stream), peer, self._limits)
            try:
                await self._handler(ex)
            except (ConnectionError, ConnectionAbortedError):
                stream.reset()
                return
            except Exception as exc:
                if ex.responded or ex.taken_over:
                    stream.reset()
                    return
                await self._on_error(ex, exc)
            await stream.close()
        except Exception:  # a broken stream ends its one request, never the link
            stream.reset()


class LinkPool:
    """Links this replica opened to others: one session per peer, dialled on first use."""

    def __init__(
        self, replica_id: uuid.UUID, key: bytes, mux_config: MuxConfig, dial_timeout: float = 2.0
    ) -> None:
        self.replica_id = replica_id
        self._key = key
        self._mux_config = mux_config
        self._dial_timeout = dial_timeout
        self._sessions: dict[uuid.UUID, MuxSession] = {}
        self._dialling: dict[uuid.UUID, asyncio.Future[MuxSession]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def spawn(self, closing: Coroutine[Any, Any, None]) -> None:
        """Run a session's close in the background, kept until it ends."""
        task = asyncio.ensure_future(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def session(self, peer: uuid.UUID, address: str) -> MuxSession:
        live = self._sessions.get(peer)
        if live is not None and not live.closed and live.remote_go_away is None:
            return live
        dialling = self._dialling.get(peer)
        if dialling is None:
            dialling = asyncio.ensure_future(self._dial(peer, address))
            self._dialling[peer] = dialling
            dialling.add_done_callback(lambda _f: self._dialling.pop(peer, None))
        return await asyncio.shield(dialling)

    async def _dial(self, peer: uuid.UUID, address: str) -> MuxSession:
        header = proof_header(self._key, self.replica_id, peer)
        websocket = await ws_connect(
            f"ws://{address}{LINK_PATH}",
            additional_headers={LINK_HEADER.decode(): header},
            max_size=None,
            compression=None,
            open_timeout=self._dial_timeout,
        )
        session = MuxSession(
            WebSocketByteStream(websocket),
            client=True,
            config=self._mux_config,
            name=f"link-to-{peer}",
        )
        old = self._sessions.get(peer)
        self._sessions[peer] = session
        if old is not None:
            self.spawn(old.close(drain_timeout=30))
        log.info("replica link to %s (%s) up", peer, address)
        return session

    def drop(self, peer: uuid.UUID) -> None:
        session = self._sessions.pop(peer, None)
        if session is not None:
            self.spawn(session.close(drain_timeout=30))

    async def close(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

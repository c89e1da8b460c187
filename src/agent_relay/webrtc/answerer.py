"""The host's answerer: answer a verified offer with an aiortc peer, then serve the
channel's ``http_request`` messages as that client (same admission as relayed, answers
signed) from the local server.

Bodies are whole (base64 in the message, as the reference) unless the client asks for the
extensions (docs/webrtc.md): a streamed answer (``stream``), a streamed request body paced
by credit (``upload``; fed to the trust admission as it comes, checked when it ends, and
passed on only then, as through the relay), and ``cancel`` both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from ..trust import wire
from ..trust.admission import Reply, ResponseSealer, forwarded_header_names
from ..trust.body import BodyBuffer
from ..trust.errors import TrustError, success_body
from ..trust.host import ApiReply, TrustHost, error_reply, json_reply
from ..trust.sessions import VerifiedRequest
from .host import ChannelAdmission, ChannelOwner, ChannelRefused, PeerTable, admit, begin
from .limits import ChannelLimits
from .messages import (
    EXTENSIONS,
    METHODS,
    Body,
    BodyEnd,
    Cancel,
    Credit,
    Headers,
    Hello,
    HttpRequest,
    HttpResponse,
    WsClose,
    WsError,
    WsFrame,
    WsOpen,
    WsOpened,
)
from .peer import (
    IceServer,
    MessagePipe,
    NegotiationError,
    WebRtcUnavailable,
    make_answer,
    require_aiortc,
)

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)

CHUNK_BODY = 32 * 1024  # body bytes per ``body`` message (about 44 KiB once in base64)

# Not passed to the local server: hop-by-hop, and what the relay would not pass either.
_DROPPED = frozenset({"host", "origin", "connection", "content-length", "transfer-encoding"})
_DROPPED_ANSWER = frozenset({"connection", "transfer-encoding", "content-length", "keep-alive"})


@dataclass
class ChannelStats:
    offers: int = 0
    channels_opened: int = 0
    http_served: int = 0
    body_messages: int = 0
    ws_opened: int = 0
    ws_frames: int = 0
    refused: int = 0
    uploads: int = 0  # streamed request bodies taken
    upload_bytes: int = 0
    cancelled_by_client: int = 0
    cancelled_by_host: int = 0  # the local server failed under a streamed answer


class _Upload:
    """A streamed request body on its way in: the client may send ``granted`` bytes in
    all; the serve loop queues what comes (bounded) for the request's task."""

    def __init__(self, limits: ChannelLimits) -> None:
        self.queue: asyncio.Queue[Body | BodyEnd] = asyncio.Queue(limits.max_queue)
        self.granted = 0
        self.received = 0

    def deliver(self, message: Body | BodyEnd) -> str | None:
        """Queue ``message``; the reason to close the channel when the client broke the
        flow control (more than its credit, or more messages than the queue holds)."""
        if isinstance(message, Body):
            self.received += len(message.data)
            if self.received > self.granted:
                return "a request body over its credit"
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return "a request body's queue is full"
        return None


@dataclass
class _Channel:
    """One open channel's state: its owner, what the client negotiated, its requests."""

    pipe: MessagePipe
    owner: ChannelOwner
    extensions: frozenset[str] = frozenset()
    requests: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)


class WebRtcAnswerer:
    def __init__(
        self,
        trust: TrustHost,
        upstream_url: str,
        *,
        limits: ChannelLimits | None = None,
        ice_servers: Sequence[IceServer] = (),
    ) -> None:
        self.trust = trust
        self.upstream_url = upstream_url.rstrip("/")
        self.limits = limits or ChannelLimits()
        self.ice_servers = list(ice_servers)
        self.peers = PeerTable(self.limits)
        self.stats = ChannelStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pcs: set[RTCPeerConnection] = set()
        self._http = httpx.AsyncClient(timeout=60.0, follow_redirects=False)

    async def close_peers(self) -> None:
        """Close every peer connection (their clients fall back to the relay)."""
        for pc in list(self._pcs):
            await self._close_pc(pc)

    async def aclose(self) -> None:
        await self.close_peers()
        for task in list(self._tasks):
            task.cancel()
        await self._http.aclose()

    async def handle_offer(self, verified: VerifiedRequest, body: bytes) -> ApiReply:
        """Answer ``POST /api/webrtc/offer`` (already verified as a signed relayed request);
        the caller signs the reply like every answer."""
        now = time.time()
        self.stats.offers += 1
        try:
            obj = json.loads(body)
            offer, offer_id = obj["sdp"], obj["session_id"]
            if not isinstance(offer, str) or not isinstance(offer_id, str) or len(offer_id) > 64:
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return error_reply(TrustError(400, "bad_request", "expected {sdp, session_id}"), now)
        owner = ChannelOwner(verified.client_id, verified.session_id)
        try:
            pc, answer = await make_answer(offer, self.ice_servers, self.limits)
        except NegotiationError as exc:
            log.info("webrtc: offer from client %s refused: %s", owner.client_id, exc)
            return error_reply(TrustError(400, "webrtc_error", str(exc)), now)
        self._pcs.add(pc)

        def close() -> None:
            self._spawn(self._close_pc(pc))

        try:
            handle = self.peers.add(owner, offer_id, close, now, self.trust)
        except ChannelRefused as exc:
            await self._close_pc(pc)
            return error_reply(exc, now)

        @pc.on("datachannel")
        def on_channel(channel: object) -> None:
            pipe = MessagePipe(channel, self.limits)  # type: ignore[arg-type]
            self.stats.channels_opened += 1
            log.info("webrtc: channel open for client %s", owner.client_id)
            self._spawn(self._serve(pipe, owner, handle))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.peers.remove(handle)
                self._spawn(self._close_pc(pc))

        return json_reply(200, success_body({"sdp": answer, "session_id": offer_id}))

    async def _close_pc(self, pc: RTCPeerConnection) -> None:
        self._pcs.discard(pc)
        await pc.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, pipe: MessagePipe, owner: ChannelOwner, handle: int) -> None:
        in_flight = asyncio.Semaphore(self.limits.max_in_flight)
        sockets: dict[str, ClientConnection] = {}
        channel = _Channel(pipe, owner)
        watch = asyncio.create_task(self._watch_session(pipe, owner))
        try:
            while True:
                try:
                    async with asyncio.timeout(self.limits.idle_timeout):
                        message = await pipe.receive()
                except TimeoutError:
                    log.info("webrtc: channel of client %s idle, closed", owner.client_id)
                    return
                if message is None:
                    return
                self.peers.touch(handle, time.time())
                if isinstance(message, HttpRequest):
                    await self._start_http(channel, message, in_flight)
                elif isinstance(message, Body | BodyEnd):
                    upload = channel.uploads.get(message.id)
                    # One that ended (refused, cancelled): what was on its way is dropped.
                    if upload is not None and (broken := upload.deliver(message)):
                        pipe._fail(broken)
                        return
                elif isinstance(message, Cancel):
                    task = channel.requests.get(message.id)
                    if task is not None:
                        self.stats.cancelled_by_client += 1
                        task.cancel()
                elif isinstance(message, Hello):
                    # Only a client that says hello hears one: a reference peer never does.
                    if not channel.extensions:
                        channel.extensions = message.extensions & EXTENSIONS
                        await pipe.send(Hello(channel.extensions))
                elif isinstance(message, WsOpen):
                    if message.conn_id in sockets or len(sockets) >= self.limits.max_in_flight:
                        await pipe.send(WsError(message.conn_id, "too many WebSockets"))
                        continue
                    self._spawn(self._websocket(pipe, owner, message, sockets))
                elif isinstance(message, WsFrame):
                    ws = sockets.get(message.conn_id)
                    if ws is not None:
                        await _to_local(ws, message)
                elif isinstance(message, WsClose):
                    ws = sockets.get(message.conn_id)
                    if ws is not None:
                        await ws.close(message.code or 1000, message.reason or "")
                # Anything else from a client is ignored, as the reference does.
        except ConnectionError:
            return
        finally:
            watch.cancel()
            pipe.close()
            self.peers._end(handle)
            # The channel's requests end with it (as a relayed one whose stream is reset).
            for task in list(channel.requests.values()):
                task.cancel()
            for ws in list(sockets.values()):
                await ws.close(1001, "channel closed")

    async def _start_http(
        self, channel: _Channel, request: HttpRequest, in_flight: asyncio.Semaphore
    ) -> None:
        if request.id in channel.requests:
            return  # an id in use: ignored (its answer would be ambiguous)
        upload = None
        if request.upload:
            if len(channel.uploads) >= self.limits.max_uploads:
                refused = ChannelRefused(429, "too_many_uploads", "too many uploads at once")
                self.stats.refused += 1
                reply = error_reply(refused, time.time())
                await channel.pipe.send(
                    HttpResponse(request.id, reply.status, _headers(reply.headers), reply.body)
                )
                return
            upload = channel.uploads[request.id] = _Upload(self.limits)
        await in_flight.acquire()
        task = asyncio.create_task(self._answer_http(channel, request, upload, in_flight))
        channel.requests[request.id] = task
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if channel.requests.get(request.id) is task:
                del channel.requests[request.id]
            if channel.uploads.get(request.id) is upload:
                channel.uploads.pop(request.id, None)

        task.add_done_callback(done)

    async def _watch_session(self, pipe: MessagePipe, owner: ChannelOwner) -> None:
        """The end of the signing session (expired, idle, revoked) closes the channel.
        Revocation also closes it at once through the peer table's watch."""
        while not pipe.closed.is_set():
            await asyncio.sleep(self.limits.session_check)
            try:
                self.trust.sessions.lookup(owner.session_id, time.time())
            except TrustError as exc:
                log.info("webrtc: channel of client %s closed: %s", owner.client_id, exc.reason)
                pipe.close()
                return

    async def _websocket(
        self,
        pipe: MessagePipe,
        owner: ChannelOwner,
        message: WsOpen,
        sockets: dict[str, ClientConnection],
    ) -> None:
        """A WebSocket over the channel: admitted like a relayed upgrade (signature in the
        headers or the query), then bridged to the local server. Frames need no signature
        of their own: the channel's DTLS keys are bound to the signed offer and answer."""
        conn_id = message.conn_id
        verified = admit(
            self.trust, owner, "GET", message.path, message.headers, b"", time.time(), upgrade=True
        )
        if isinstance(verified, Reply):
            self.stats.refused += 1
            with contextlib.suppress(ConnectionError):
                await pipe.send(WsError(conn_id, f"refused ({verified.status})"))
            return
        url = "ws" + self.upstream_url.removeprefix("http") + verified.path_and_query
        try:
            async with connect(
                url,
                additional_headers={"x-vk-relayed": "1"},
                subprotocols=[Subprotocol(message.protocols)] if message.protocols else None,
                max_size=self.limits.max_message // 2,
                open_timeout=15,
            ) as ws:
                sockets[conn_id] = ws
                self.stats.ws_opened += 1
                await pipe.send(WsOpened(conn_id, ws.subprotocol))
                with contextlib.suppress(ConnectionClosed):
                    async for data in ws:
                        text = isinstance(data, str)
                        payload = data.encode() if isinstance(data, str) else data
                        await pipe.send(WsFrame(conn_id, "text" if text else "binary", payload))
                        self.stats.ws_frames += 1
                code = ws.close_code if ws.close_code and ws.close_code >= 1000 else 1006
                await pipe.send(WsClose(conn_id, code, ws.close_reason or ""))
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            with contextlib.suppress(ConnectionError):
                await pipe.send(WsError(conn_id, f"the local server refused: {exc}"[:200]))
        except ConnectionError:
            pass
        finally:
            sockets.pop(conn_id, None)

    async def _answer_http(
        self,
        channel: _Channel,
        request: HttpRequest,
        upload: _Upload | None,
        slot: asyncio.Semaphore,
    ) -> None:
        try:
            with contextlib.suppress(ConnectionError):
                await self._http_exchange(channel, request, upload)
        finally:
            slot.release()

    async def _http_exchange(
        self, channel: _Channel, request: HttpRequest, upload: _Upload | None
    ) -> None:
        pipe, owner = channel.pipe, channel.owner
        now = time.time()
        started: ChannelAdmission | None = None
        verified: VerifiedRequest | Reply
        if upload is None:
            verified = admit(
                self.trust, owner, request.method, request.path, request.headers, request.body, now
            )
        else:
            begun = begin(self.trust, owner, request.method, request.path, request.headers, now)
            if isinstance(begun, Reply):
                verified = begun
            else:
                started = begun
                verified = await self._take_upload(pipe, request.id, started, upload)
        try:
            if isinstance(verified, Reply):
                self.stats.refused += 1
                log.info("webrtc: %s %s refused: %d", request.method, request.path, verified.status)
                headers = _headers(verified.headers)
                await pipe.send(HttpResponse(request.id, verified.status, headers, verified.body))
                return
            await self._forward(channel, request, verified, started)
        finally:
            if started is not None:
                started.close()

    async def _take_upload(
        self, pipe: MessagePipe, id: str, started: ChannelAdmission, upload: _Upload
    ) -> VerifiedRequest | Reply:
        """Read a streamed request body into the admission, granting credit as it is taken
        (so the client never sends more than the window ahead of us); the signature, body
        hash included, is checked once it ends. Nothing is passed on before."""
        window = self.limits.upload_window
        upload.granted = window
        await pipe.send(Credit(id, window))
        taken = 0
        while True:
            try:
                async with asyncio.timeout(self.limits.upload_idle_timeout):
                    message = await upload.queue.get()
            except TimeoutError:
                stalled = ChannelRefused(408, "upload_stalled", "the request body stopped coming")
                return error_reply(stalled, time.time())
            if isinstance(message, BodyEnd):
                if message.error:
                    abandoned = ChannelRefused(400, "upload_abandoned", message.error[:200])
                    return error_reply(abandoned, time.time())
                self.stats.uploads += 1
                return started.finish(time.time())
            refused = started.feed(message.data)
            if refused is not None:
                return refused  # 413: the client stops when it sees the answer
            self.stats.upload_bytes += len(message.data)
            taken += len(message.data)
            if taken >= window // 2:
                upload.granted += taken
                await pipe.send(Credit(id, taken))
                taken = 0

    async def _forward(
        self,
        channel: _Channel,
        request: HttpRequest,
        verified: VerifiedRequest,
        started: ChannelAdmission | None,
    ) -> None:
        pipe = channel.pipe
        if request.method not in METHODS:
            await pipe.send(self._signed(verified, request.id, 405, {}, b""))
            return
        only = forwarded_header_names(verified)  # a client that signed its headers: those
        forwarded = [
            (name, value)
            for name, values in request.headers.items()
            if name not in _DROPPED and (only is None or name.lower() in only)
            for value in values
        ]
        # The local server sees a relayed, verified request, as through the connector.
        forwarded += [("x-vk-relayed", "1")]
        content: bytes | AsyncIterator[bytes] = request.body
        if started is not None:
            # The verified body, from the admission's buffer (memory, then a file).
            forwarded += [("content-length", str(started.body.size))]
            content = _chunks(started.body)
        upstream = self._http.build_request(
            request.method, self.upstream_url + request.path, headers=forwarded, content=content
        )
        try:
            answer = await self._http.send(upstream, stream=True)
        except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: shutting down
            log.info("webrtc: local server failed: %r", exc)
            await pipe.send(self._signed(verified, request.id, 502, {}, b""))
            return
        try:
            await self._relay_answer(channel, verified, request, answer)
        finally:
            await answer.aclose()
        self.stats.http_served += 1

    async def _relay_answer(
        self,
        channel: _Channel,
        verified: VerifiedRequest,
        request: HttpRequest,
        answer: httpx.Response,
    ) -> None:
        pipe = channel.pipe
        raw = [
            (name.lower(), value)
            for name, value in answer.headers.raw
            if name.lower().decode("latin-1") not in _DROPPED_ANSWER
        ]
        if request.stream:
            # The streamed-body extension: signed records as through the relay, sent as
            # they come (pipe.send waits while SCTP's buffer is full: backpressure).
            sealer = ResponseSealer(
                self.trust, verified, time.time, head_request=request.method == "HEAD"
            )
            head = sealer.head(answer.status_code, raw)
            if head is not None:
                await pipe.send(
                    HttpResponse(request.id, head.status, _headers(head.headers), stream=True)
                )
                try:
                    async for chunk in answer.aiter_raw():  # as it comes (SSE is not held back)
                        for start in range(0, len(chunk), CHUNK_BODY):
                            data = sealer.feed(chunk[start : start + CHUNK_BODY])
                            if data:
                                await pipe.send(Body(request.id, data))
                                self.stats.body_messages += 1
                except httpx.HTTPError as exc:
                    # The local server failed mid-body: the client is told, the body is cut
                    # (never ended as if whole: its last signed record is missing).
                    log.info("webrtc: local server failed mid-body: %r", exc)
                    self.stats.cancelled_by_host += 1
                    reason = f"the local server failed: {type(exc).__name__}"
                    if "cancel" in channel.extensions:
                        await pipe.send(Cancel(request.id, reason))
                    else:
                        await pipe.send(BodyEnd(request.id, reason))
                    return
                _, tail = sealer.finish()
                if tail:
                    await pipe.send(Body(request.id, tail))
                await pipe.send(BodyEnd(request.id))
                return
        try:
            body = await _read_whole(answer, self.limits.max_message // 2)
        except httpx.HTTPError as exc:
            log.info("webrtc: local server failed mid-body: %r", exc)
            body = None
        if body is None:
            await pipe.send(self._signed(verified, request.id, 502, {}, b""))
            return
        out = _headers([(k, v) for k, v in raw if k != b"content-length"])
        await pipe.send(self._signed(verified, request.id, answer.status_code, out, body))

    def _signed(
        self, verified: VerifiedRequest, id: str, status: int, headers: Headers, body: bytes
    ) -> HttpResponse:
        lines = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, vs in headers.items() for v in vs
        ]
        signature = self.trust.signer.sign(
            verified, status, wire.body_hash(body), time.time(), lines
        )
        for name, value in signature.headers():
            headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        return HttpResponse(id, status, headers, body)


async def _read_whole(answer: httpx.Response, limit: int) -> bytes | None:
    """The whole body (a plain ``http_response`` carries it), None when over ``limit``."""
    parts = bytearray()
    async for chunk in answer.aiter_raw():
        parts += chunk
        if len(parts) > limit:
            return None
    return bytes(parts)


async def _chunks(body: BodyBuffer) -> AsyncIterator[bytes]:
    for chunk in body.chunks():
        yield chunk


def _headers(pairs: Sequence[tuple[bytes, bytes]]) -> Headers:
    out: Headers = {}
    for name, value in pairs:
        out.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out


def new_offer_id() -> str:
    return str(uuid.uuid4())


async def _to_local(ws: ClientConnection, frame: WsFrame) -> None:
    with contextlib.suppress(ConnectionClosed):
        if frame.msg_type == "text":
            await ws.send(frame.payload.decode("utf-8", "replace"))
        elif frame.msg_type == "binary":
            await ws.send(frame.payload)
        # ping/pong/close frames: the local hop keeps its own; close comes as ws_close.


def ice_servers(stun: Sequence[str], turn: Sequence[str]) -> list[IceServer]:
    """``--stun`` and ``--turn`` values (``HOST:PORT``, or a full ``stun:``/``turn:`` URL)."""
    servers = []
    for scheme, values in (("stun", stun), ("turn", turn)):
        for value in values:
            url = value if value.startswith(f"{scheme}:") else f"{scheme}:{value}"
            servers.append(IceServer.parse(url))
    return servers


def host_answerer(
    trust: TrustHost, upstream_url: str, servers: Sequence[IceServer] = ()
) -> WebRtcAnswerer:
    """The connector's answerer for ``agent-relay host --p2p``."""
    require_aiortc()
    if not upstream_url.startswith(("http://", "https://")):
        raise WebRtcUnavailable("--p2p needs an http:// upstream (not a unix socket) for now")
    return WebRtcAnswerer(trust, upstream_url, ice_servers=servers)

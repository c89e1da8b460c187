"""Serve one relayed request: read it from its yamux stream, send it to the local server
over a pooled keep-alive connection, and stream the answer back. After a ``101`` the
stream and that connection become one raw byte pipe.

Bodies flow chunk by chunk in both directions, each write waiting for the other side
(yamux window, socket drain), so a slow reader slows the writer instead of growing
memory. A failure before the response head went out is answered with a status and a
JSON body (``errors.py``); after it, all that is left is to reset the stream, which the
relay turns into a cut client connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..aio import reap
from ..httpwire import ByteChannel, HttpConnection, HttpProtocolError
from ..httpwire.codec import LocalProtocolError, Request, Response
from ..httpwire.policy import (
    FRAMING,
    HOP_BY_HOP,
    connection_tokens,
    decode_target,
    end_to_end,
    has_body,
    header,
    is_upgrade,
    plain_body_length,
)
from ..httpwire.pump import SinkStalled, SourceBroken, pump, receive_after_upload
from ..httpwire.splice import splice_upgraded, switching_protocols
from ..mux import MuxError, MuxStream
from ..trust import wire
from ..trust.admission import (
    Reply,
    RequestHead,
    ResponseOverrun,
    ResponseSealer,
    SealedHead,
    admit,
    forwarded_header_names,
    header_lines,
    lines_map,
)
from ..trust.body import BodyBuffer
from ..trust.errors import client_revoked
from ..trust.host import TrustHost, error_reply
from ..trust.sessions import VerifiedRequest
from ..trust.signing import BodyMode
from ..webrtc.host import OFFER_PATH
from .errors import ForwardError, bad_gateway, bad_request, error_response
from .upstream import UpstreamConnection, UpstreamPool, UpstreamTarget, describe_os_error
from .wsbridge import SignedWebSocketBridge

if TYPE_CHECKING:
    from ..webrtc.answerer import WebRtcAnswerer

log = logging.getLogger(__name__)

RELAYED_HEADER = b"x-vk-relayed"
FORWARDED_HOST_HEADER = b"x-forwarded-host"
# Set by the connector itself, whatever the client sent.
_REPLACED = frozenset({b"host", RELAYED_HEADER, FORWARDED_HOST_HEADER})


# An answer at least this long (by its Content-Length) is read past the codec, for speed; its
# upstream connection is then closed rather than kept, which is cheap next to the body.
LONG_BODY = 1024 * 1024
# A response head waits for its body (to leave in one frame) when the body is known to
# be at most this long.
HEAD_WITH_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class ForwardLimits:
    max_head_size: int = 128 * 1024  # request head from the relay (then 431)
    head_timeout: float = 30.0  # for the relay's request head (then 408)
    # For the local server's response head once the request body is sent (then 502):
    # minutes, as an agent waiting on a model or a long poll may take that long; below
    # the relay's own 600 s, so the browser learns what happened. A stalled body is cut
    # by idle_timeout.
    response_timeout: float = 590.0
    idle_timeout: float = 300.0  # longest pause inside a body, either way
    # Longest write that makes no progress (the relay's client stopped reading, or the
    # local server stopped reading a request body); then the exchange is cut and its
    # upstream connection discarded, so a stalled client cannot hold a pooled one.
    send_timeout: float = 60.0
    linger: float = 30.0  # after our FIN, for the relay to end the stream (then reset)


class _Abort(Exception):
    """The exchange can no longer be answered; the stream is reset."""


class _Decided(Exception):
    """The trust core answered the request before its body's end."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


async def _buffered(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def serve_stream(
    stream: MuxStream,
    pool: UpstreamPool,
    limits: ForwardLimits,
    trust: TrustHost | None = None,
    *,
    clock: Callable[[], float] = time.time,
    webrtc: WebRtcAnswerer | None = None,
) -> None:
    """Serve the one request carried by ``stream``. A failed exchange never raises.
    With ``trust``, the request must be signed (or be a pairing step) and the answer is
    signed (``agent_relay.trust``)."""
    front = HttpConnection(stream, client=False, max_head_size=limits.max_head_size)
    try:
        await _serve(stream, front, pool, limits, trust, clock, webrtc)
    except (_Abort, MuxError, ConnectionError) as exc:
        log.debug("stream %d aborted: %s", stream.stream_id, exc)
        stream.reset()
        return
    except LocalProtocolError as exc:
        log.warning("stream %d: cannot forward this exchange: %s", stream.stream_id, exc)
        stream.reset()
        return
    except BaseException:
        stream.reset()
        raise
    await _finish(stream, limits.linger)


async def _serve(
    stream: MuxStream,
    front: HttpConnection,
    pool: UpstreamPool,
    limits: ForwardLimits,
    trust: TrustHost | None,
    clock: Callable[[], float],
    webrtc: WebRtcAnswerer | None = None,
) -> None:
    try:
        async with asyncio.timeout(limits.head_timeout):
            request = await front.receive_request()
    except TimeoutError:
        await _answer(front, bad_request(408, "no request head in time"))
        return
    except HttpProtocolError as exc:
        await _answer(front, bad_request(exc.status, str(exc) or "bad request"))
        return
    if request is None:  # the relay closed the stream without a request
        return
    await _Exchange(stream, front, request, pool, limits, trust, clock, webrtc).run()


async def _finish(stream: MuxStream, linger: float) -> None:
    """Half-close (FIN), then wait for the relay to end its side; reset if it does not.
    Resetting at once could drop response bytes the relay has not read yet."""
    try:
        await stream.close()
        async with asyncio.timeout(linger):
            while await stream.read():
                pass  # an unread request body: drop it
    except (TimeoutError, MuxError):
        stream.reset()


async def _answer(front: HttpConnection, error: ForwardError) -> None:
    head, body = error_response(error)
    await front.send_message(head, body)


class _Exchange:
    """One request and its response, between the relay's stream and the local server."""

    def __init__(
        self,
        stream: MuxStream,
        front: HttpConnection,
        request: Request,
        pool: UpstreamPool,
        limits: ForwardLimits,
        trust: TrustHost | None = None,
        clock: Callable[[], float] = time.time,
        webrtc: WebRtcAnswerer | None = None,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.webrtc = webrtc
        self.front = front
        self.request = request
        self.pool = pool
        self.limits = limits
        self.trust = trust
        # With trust the head is built once admission knows which headers pass (_admit).
        self.head: Request | None = (
            upstream_request(request, pool.target) if trust is None else None
        )
        self.has_body = has_body(request.headers)
        self.upstream: UpstreamConnection | None = None
        self.uploading: asyncio.Task[None] | None = None
        # With trust: the request body, read whole before forwarding (its hash is signed).
        self.body: BodyBuffer | None = None
        self.verified: VerifiedRequest | None = None
        # Set when the signing client is revoked: the answer's body is cut off (the task
        # pumping it, when there is one, is cancelled: no per-chunk wait on an event).
        self.revoked = False
        self._cut_on_revoke: asyncio.Task[object] | None = None

    @property
    def what(self) -> str:
        """The request for log lines; the query is left out (it may carry signatures)."""
        path = self.request.target.partition(b"?")[0]
        return f"{self.request.method.decode('ascii', 'replace')} {path.decode('latin-1')}"

    async def run(self) -> None:
        if self.trust is not None:
            unwatch = None
            try:
                if await self._admit(self.trust):
                    return
                if self.verified is not None:
                    unwatch = self.trust.watch(self.verified.session_id, self._revoke)
                await self._forward()
            finally:
                if unwatch is not None:
                    unwatch()
                if self.body is not None:
                    self.body.close()
            return
        if self.has_body:
            await self._exchange()
            return
        # Reach the request's end now: the codec must see it before a 101 can be sent.
        async for _ in self.front.receive_body():
            pass
        await self._forward()

    async def _forward(self) -> None:
        if is_upgrade(self.request.headers):
            await self._exchange()  # what follows on the stream belongs to the pipe
            return
        # Nothing more comes from the relay for this request; if it resets the stream (its
        # client went away), the local request is cut short instead of running on for
        # nobody.
        task = asyncio.current_task()
        assert task is not None
        failures: list[MuxError] = []

        def cut(error: MuxError) -> None:
            failures.append(error)
            task.cancel()

        self.stream.on_failure(cut)
        try:
            await self._exchange()
        except asyncio.CancelledError:
            if failures and task.uncancel() == 0:
                raise _Abort(f"the relay reset the stream: {failures[0]}") from None
            raise
        finally:
            self.stream.on_failure(None)

    # ----------------------------------------------------------------- trust

    async def _admit(self, trust: TrustHost) -> bool:
        """Read the body, check the signature, serve the pairing routes (the trust core
        decides). True when the request was answered here."""
        request = self.request
        lines = header_lines(request.headers)
        head = RequestHead(
            request.method.decode("ascii", "replace"),
            decode_target(request.target),
            lines_map(lines),
            websocket=is_upgrade(request.headers),
            lines=lines,
        )
        admission = admit(trust, head, "relay", self.clock())
        assert admission is not None  # relayed: the trust layer always decides
        self.body = admission.body
        if admission.refusal is not None:
            # Refused from the head: the body is never read into the buffer (what is
            # left of it is dropped as it comes, by _finish).
            log.info(
                "%s -> %d: %s", self.what, admission.refusal.status, _reason(admission.refusal)
            )
            await self._reply(admission.refusal)
            return True

        async def feed(chunk: bytes) -> None:
            decided = admission.feed(chunk)
            if decided is not None:
                raise _Decided(decided)

        outcome: Reply | None = None
        try:
            if self.has_body:
                await self._pump_request_body(feed)
            else:
                async for chunk in self.front.receive_body():
                    await feed(chunk)  # none: only the end of the message, already here
        except _Decided as early:
            outcome = early.reply
        if outcome is None:
            decided = admission.finish(self.clock)
            if not isinstance(decided, Reply):
                self.verified = decided.verified
                # A client that signed its headers has only those passed on (``only``).
                self.head = upstream_request(
                    request,
                    self.pool.target,
                    signed_frames=True,
                    only=forwarded_header_names(decided.verified),
                )
                if not (head.path == OFFER_PATH and head.method == "POST" and self.webrtc):
                    return False
                # The WebRTC upgrade: answered here, after admission, signed like any answer.
                outcome = await self._answer_offer(self.webrtc, trust, decided.verified)
            else:
                outcome = decided
        if outcome.status >= 400:
            log.info("%s -> %d: %s", self.what, outcome.status, _reason(outcome))
        await self._reply(outcome)
        return True

    async def _answer_offer(
        self, webrtc: WebRtcAnswerer, trust: TrustHost, verified: VerifiedRequest | None
    ) -> Reply:
        assert verified is not None  # relayed: always signed
        assert self.body is not None
        reply = await webrtc.handle_offer(verified, self.body.read_all())
        signature = trust.signer.sign(
            verified, reply.status, wire.body_hash(reply.body), self.clock(), reply.headers
        )
        return Reply(reply.status, reply.body, reply.headers + signature.headers())

    async def _pump_request_body(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        try:
            await pump(
                self.front.receive_body(),
                send,
                idle_timeout=self.limits.idle_timeout,
                send_timeout=self.limits.send_timeout,
            )
        except SourceBroken as exc:
            raise _Abort(f"the request body from the relay broke off: {exc}") from None

    async def _reply(self, reply: Reply) -> None:
        await self.front.send_message(Response(reply.status, reply.headers), reply.body)

    # ----------------------------------------------------------------- exchange

    async def _exchange(self) -> None:
        try:
            response = await self._start()
        except ForwardError as exc:
            level = logging.WARNING if exc.status >= 500 else logging.INFO
            log.log(level, "%s -> %d: %s", self.what, exc.status, exc.message)
            await _answer(self.front, exc)
            return
        upstream = self.upstream
        assert upstream is not None
        try:
            if self.revoked:
                raise _Abort("the client was revoked")
            if response.status_code == 101:  # the only 1xx that gets here
                await self._splice(upstream, response)
            else:
                await self._respond(upstream, response)
        except BaseException as exc:
            await self._stop_upload()
            self.pool.discard(upstream)
            if not (isinstance(exc, _Abort) and self.revoked and not self.front.head_sent):
                raise
            # Revoked while the local server thought, or while a buffered answer was
            # read: nothing has gone out yet, so the client is told why, as its next
            # request would be, instead of finding its stream cut.
            log.info("%s -> 401: the client was revoked", self.what)
            await self._reply(error_reply(client_revoked(), self.clock()))

    # ----------------------------------------------------------------- request

    async def _start(self) -> Response:
        """Send the request head and wait for the response head. A kept-alive connection
        that the server closed just before we used it gets one retry on a new connection,
        for a request without a body (one with a body cannot be replayed)."""
        for attempt in (1, 2):
            upstream = await self.pool.acquire(fresh=attempt > 1)
            self.upstream = upstream
            try:
                return await self._send_head(upstream)
            except (OSError, HttpProtocolError) as exc:
                await self._stop_upload()
                self.pool.discard(upstream)
                stale = attempt == 1 and upstream.reused and upstream.received_nothing
                if stale and (not self.has_body or self.body is not None):
                    log.debug("%s: kept-alive connection was stale; retrying", self.what)
                    continue
                raise self._failure(upstream, exc) from None
            except BaseException:
                await self._stop_upload()
                self.pool.discard(upstream)
                raise
        raise AssertionError("unreachable")

    async def _send_head(self, upstream: UpstreamConnection) -> Response:
        http = upstream.http
        head = self.head
        assert head is not None  # built by _admit when there is a trust layer
        if self.has_body:
            await http.send(head)
            self.uploading = asyncio.create_task(self._upload(http))
        else:
            await http.send_message(head, b"")
        try:
            return await receive_after_upload(
                http.receive_response(), self.uploading, self.limits.response_timeout
            )
        except TimeoutError:
            raise bad_gateway(
                f"the local server did not answer within {self.limits.response_timeout:g} s"
            ) from None

    async def _upload(self, http: HttpConnection) -> None:
        # A SinkStalled (the server stopped reading) is like an OSError: an answer it
        # gives still stands (``_settle_upload``).
        if self.body is not None:  # read already, for its signature
            await pump(
                _buffered(self.body.chunks()),
                http.send_data,
                idle_timeout=None,
                send_timeout=self.limits.send_timeout,
            )
        else:
            await self._pump_request_body(http.send_data)
        await http.end_message()

    async def _stop_upload(self) -> None:
        task, self.uploading = self.uploading, None
        await reap(task)

    def _failure(self, upstream: UpstreamConnection, exc: Exception) -> ForwardError:
        if isinstance(exc, HttpProtocolError):
            if upstream.received_nothing:
                return bad_gateway("the local server closed the connection without answering")
            return bad_gateway(f"bad response from the local server: {exc}")
        assert isinstance(exc, OSError)
        return bad_gateway(f"lost the connection to the local server: {describe_os_error(exc)}")

    # ----------------------------------------------------------------- response

    async def _pump_response_body(
        self,
        upstream: UpstreamConnection,
        send: Callable[[bytes], Awaitable[None]],
        long_body: int | None = None,
    ) -> None:
        """Stream the answer's body into ``send``; ``long_body``: its length, to read it
        past the codec (the connection is closed afterwards instead of being kept)."""
        http = upstream.http
        body = http.receive_body() if long_body is None else http.receive_long_body(long_body)
        # A signed answer is cut when its client is revoked (a revoked client gets nothing
        # more, streamed or not): before its body, or by cancelling this pump (_revoke).
        task = asyncio.current_task() if self.verified is not None else None
        if self.revoked:
            raise _Abort("the client was revoked")
        self._cut_on_revoke = task
        try:
            await pump(
                body,
                send,
                idle_timeout=self.limits.idle_timeout,
                send_timeout=self.limits.send_timeout,
                ready=http.body_ready,
            )
        except SourceBroken as exc:
            raise _Abort(f"the local server's response broke off: {exc}") from None
        except SinkStalled as exc:
            raise _Abort(f"the relay took no response data: {exc}") from None
        except asyncio.CancelledError:
            if task is not None and self.revoked and task.uncancel() == 0:
                raise _Abort("the client was revoked") from None
            raise
        finally:
            self._cut_on_revoke = None

    def _revoke(self) -> None:
        """The signing client was revoked (TrustHost.watch)."""
        if self.revoked:
            return
        self.revoked = True
        if self._cut_on_revoke is not None:
            self._cut_on_revoke.cancel()

    async def _respond(self, upstream: UpstreamConnection, response: Response) -> None:
        front = self.front
        headers = response_headers(response.headers)
        if self.verified is not None and self.trust is not None:
            sealer = ResponseSealer(
                self.trust, self.verified, self.clock, head_request=self.request.method == b"HEAD"
            )
            sealed = sealer.head(response.status_code, headers)
            if sealer.mode is not BodyMode.UNSIGNED:
                await self._respond_sealed(upstream, response, sealer, sealed)
                await self._complete(upstream, response)
                return
        head = Response(response.status_code, headers, response.reason)
        length = plain_body_length(self.request.method, response.status_code, response.headers)
        # Out with the body, in one frame, when it is at hand or is a small body of known
        # length (it follows at once): a relay with Nagle on (the reference) would
        # otherwise send the head and the body as two small writes, the second waiting
        # on the client's delayed ACK (~40 ms). A body of unknown length may take a while
        # (an event stream): its head goes at once.
        if upstream.http.body_ready() or (length is not None and length <= HEAD_WITH_BODY):
            front.start_message(head)
        else:
            await front.send(head)
        long_body = length if length is not None and length >= LONG_BODY else None
        await self._pump_response_body(upstream, front.send_data, long_body)
        await self._complete(upstream, response)

    async def _complete(self, upstream: UpstreamConnection, response: Response) -> None:
        await self.front.end_message()
        await self._settle_upload()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %d", self.what, response.status_code)
        self.pool.release(upstream)

    async def _respond_sealed(
        self,
        upstream: UpstreamConnection,
        response: Response,
        sealer: ResponseSealer,
        sealed: SealedHead | None,
    ) -> None:
        """A signed answer: a small body read whole and signed in the reference headers,
        or a streamed one signed record by record (chunked-v1)."""
        front = self.front
        if sealed is not None:
            await front.send(Response(sealed.status, sealed.headers, response.reason))

        async def seal(chunk: bytes) -> None:
            try:
                out = sealer.feed(chunk)
            except ResponseOverrun as exc:
                raise _Abort(str(exc)) from None
            if out:
                await front.send_data(out)

        await self._pump_response_body(upstream, seal)
        late_head, tail = sealer.finish()
        if late_head is not None:
            # A buffered answer: its head and body leave in one write (and one frame).
            front.start_message(Response(late_head.status, late_head.headers, response.reason))
        if tail:
            await front.send_data(tail)

    async def _settle_upload(self) -> None:
        """The response is complete; what became of the request body?"""
        task = self.uploading
        if task is None:
            return
        if not task.done():
            # The server answered without reading all of it: the rest is moot, and the
            # connection cannot be reused (the codec sees the unfinished request).
            await self._stop_upload()
            return
        self.uploading = None
        error = task.exception()
        if isinstance(error, _Abort):
            raise error  # the relay's side broke: nothing more to say on this stream
        # An OSError: the server stopped reading after answering; the answer stands.

    async def _splice(self, upstream: UpstreamConnection, response: Response) -> None:
        if self.uploading is not None:
            task, self.uploading = self.uploading, None
            await task
        self.pool.detach(upstream)  # the pipe owns the connection now
        switched = switching_protocols(response, response_headers(response.headers))
        try:
            if self.verified is not None and self.trust is not None:
                await splice_upgraded(self.front, upstream.http, switched, pipe=self._bridge)
                return
            log.debug("%s -> 101, spliced", self.what)
            await splice_upgraded(self.front, upstream.http, switched)
        finally:
            upstream.close()

    async def _bridge(
        self, client: ByteChannel, server: ByteChannel, from_client: bytes, from_server: bytes
    ) -> None:
        """A signed WebSocket: envelopes to and from the client, plain frames upstream."""
        assert self.trust is not None
        assert self.verified is not None
        bridge = SignedWebSocketBridge(
            client,
            server,
            self.trust.frame_codec(self.verified),
            max_message=self.trust.limits.max_ws_message,
        )
        unwatch = self.trust.watch(self.verified.session_id, bridge.revoke)
        log.debug("%s -> 101, signed frames", self.what)
        try:
            await bridge.run(from_client, from_server)
        finally:
            unwatch()


# --------------------------------------------------------------------- headers


def upstream_request(
    request: Request,
    target: UpstreamTarget,
    *,
    signed_frames: bool = False,
    only: frozenset[str] | None = None,
) -> Request:
    """The request as the local server gets it: ``Host`` is the server's own address
    (the client's goes in ``x-forwarded-host``), hop-by-hop headers are dropped (an
    upgrade's are kept), and ``x-vk-relayed: 1`` replaces whatever the client sent.
    ``only`` (admission.forwarded_header_names): the headers a client signed, then
    nothing else of the client's (nor the relay's ``Host``) is passed on."""
    named = connection_tokens(request.headers) - FRAMING
    chunked = header(request.headers, b"transfer-encoding") is not None
    upgrade = header(request.headers, b"upgrade")
    headers: list[tuple[bytes, bytes]] = [(b"host", target.host_header)]
    for name, value in request.headers:
        if name in HOP_BY_HOP or name in _REPLACED or name in named:
            continue
        if only is not None and name.decode("latin-1") not in only:
            continue
        if name == b"content-length" and chunked:
            continue
        if signed_frames and name == b"sec-websocket-extensions":
            continue  # the connector re-frames the messages; no compression to carry over
        headers.append((name, value))
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    client_host = header(request.headers, b"host")
    if client_host and only is None:
        headers.append((FORWARDED_HOST_HEADER, client_host))
    if upgrade is not None and b"upgrade" in named:
        headers += [(b"connection", b"upgrade"), (b"upgrade", upgrade)]
    headers.append((RELAYED_HEADER, b"1"))
    return Request(request.method, request.target, headers)


def response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The local server's response headers for the relay; the codec redoes the framing."""
    return end_to_end(headers)


def _reason(reply: Reply) -> str:
    """A refusal's message and reason, for the log line."""
    try:
        data = json.loads(reply.body)
        return f"{data.get('message')} ({data.get('reason')})"
    except (ValueError, AttributeError):
        return "refused"

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
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h11

from ..httpwire import HttpConnection, HttpProtocolError, splice
from ..httpwire.connection import plain_body_length
from ..mux import MuxError, MuxStream
from ..trust import wire
from ..trust.body import BodyBuffer
from ..trust.errors import TrustError
from ..trust.host import (
    ENROLLMENT_CODE_PATH,
    MAX_API_BODY,
    UNSIGNED_PATHS,
    ApiReply,
    TrustHost,
    error_reply,
    is_api_path,
    relay_address,
)
from ..trust.sessions import VerifiedRequest
from ..trust.signing import BodyMode, choose_body_mode
from ..trust.wsbridge import SignedWebSocketBridge
from ..webrtc.host import OFFER_PATH
from .errors import ForwardError, bad_gateway, bad_request, error_response
from .upstream import UpstreamConnection, UpstreamPool, UpstreamTarget, describe_os_error

if TYPE_CHECKING:
    from ..webrtc.answerer import WebRtcAnswerer

log = logging.getLogger(__name__)

RELAYED_HEADER = b"x-vk-relayed"
FORWARDED_HOST_HEADER = b"x-forwarded-host"
# Headers about one hop, not the message. h11 frames each hop's body itself.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the connector itself, whatever the client sent.
_REPLACED = frozenset({b"host", RELAYED_HEADER, FORWARDED_HOST_HEADER})
# Never dropped because a Connection header names them: that would change the framing.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host"})


# An answer at least this long (by its Content-Length) is read past h11, for speed; its
# upstream connection is then closed rather than kept, which is cheap next to the body.
LONG_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ForwardLimits:
    max_head_size: int = 64 * 1024  # request head from the relay (then 431)
    head_timeout: float = 30.0  # for the relay's request head (then 408)
    # For the local server's response head (then 502); below the relay's own 60 s, so
    # the browser learns what happened.
    response_timeout: float = 55.0
    idle_timeout: float = 300.0  # longest pause inside a body, either way
    linger: float = 30.0  # after our FIN, for the relay to end the stream (then reset)


class _Abort(Exception):
    """The exchange can no longer be answered; the stream is reset."""


async def serve_stream(
    stream: MuxStream,
    pool: UpstreamPool,
    limits: ForwardLimits,
    trust: TrustHost | None = None,
    webrtc: WebRtcAnswerer | None = None,
) -> None:
    """Serve the one request carried by ``stream``. A failed exchange never raises.
    With ``trust``, the request must be signed (or be a pairing step) and the answer is
    signed (``agent_relay.trust``)."""
    front = HttpConnection(stream, client=False, max_head_size=limits.max_head_size)
    try:
        await _serve(stream, front, pool, limits, trust, webrtc)
    except (_Abort, MuxError, ConnectionError) as exc:
        log.debug("stream %d aborted: %s", stream.stream_id, exc)
        stream.reset()
        return
    except h11.LocalProtocolError as exc:
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
    await _Exchange(stream, front, request, pool, limits, trust, webrtc).run()


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
        request: h11.Request,
        pool: UpstreamPool,
        limits: ForwardLimits,
        trust: TrustHost | None = None,
        webrtc: WebRtcAnswerer | None = None,
    ) -> None:
        self.stream = stream
        self.webrtc = webrtc
        self.front = front
        self.request = request
        self.pool = pool
        self.limits = limits
        self.trust = trust
        self.head = upstream_request(request, pool.target, signed_frames=trust is not None)
        self.has_body = _has_body(request)
        self.upstream: UpstreamConnection | None = None
        self.uploading: asyncio.Task[None] | None = None
        # With trust: the request body, read whole before forwarding (its hash is signed).
        self.body: BodyBuffer | None = None
        self.verified: VerifiedRequest | None = None
        # Set when the signing client is revoked: a streamed answer is cut off.
        self.revoked = asyncio.Event()

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
                    unwatch = self.trust.watch(self.verified.session_id, self.revoked.set)
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
        # Reach the request's end now: h11 must see it before a 101 can be sent.
        async for _ in self.front.receive_body():
            pass
        await self._forward()

    async def _forward(self) -> None:
        if _is_upgrade(self.request):
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
        """Read the body, check the signature, serve the pairing routes. True when the
        request was answered here (refused, or a ``/api/relay-auth/server/`` route)."""
        now = time.time()
        trust.sync()
        request = self.request
        method = request.method.decode("ascii", "replace")
        try:
            target = request.target.decode()
        except UnicodeDecodeError:
            await self._reply(error_reply(TrustError(400, "bad_request", "bad target"), now))
            return True
        path = target.partition("?")[0]
        headers: dict[str, str] = {}
        for name, value in request.headers:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        api = is_api_path(path)
        limits = trust.limits
        self.body = BodyBuffer(limits.body_memory_limit, MAX_API_BODY if api else limits.body_limit)
        try:
            async for chunk in self._request_body():
                self.body.add(chunk)
        except TrustError as exc:
            log.info("%s -> %d: %s", self.what, exc.status, exc.message)
            await self._reply(error_reply(exc, now))
            return True
        if not (api and (path in UNSIGNED_PATHS or path == ENROLLMENT_CODE_PATH)):
            try:
                self.verified = trust.verify(
                    method, target, headers, self.body.h_body, now, allow_query=_is_upgrade(request)
                )
            except TrustError as exc:
                log.info("%s -> %d: %s (%s)", self.what, exc.status, exc.message, exc.reason)
                await self._reply(error_reply(exc, now))
                return True
        if path == OFFER_PATH and method == "POST" and self.webrtc and self.verified:
            # The WebRTC upgrade: answered here, after admission, signed like every answer.
            reply = await self.webrtc.handle_offer(self.verified, self.body.read_all())
            await self._reply(self._signed(trust, reply))
            return True
        if not api:
            return False
        reply = trust.handle_api(
            method,
            path,
            self.body.read_all(),
            relayed=True,
            address=relay_address(headers),
            now=now,
        )
        await self._reply(self._signed(trust, reply))
        return True

    def _signed(self, trust: TrustHost, reply: ApiReply) -> ApiReply:
        if self.verified is None:
            return reply
        signature = trust.signer.sign(
            self.verified, reply.status, wire.body_hash(reply.body), time.time()
        )
        return ApiReply(reply.status, reply.body, reply.headers + signature.headers())

    async def _request_body(self) -> AsyncIterator[bytes]:
        body = self.front.receive_body()
        while True:
            try:
                async with asyncio.timeout(self.limits.idle_timeout):
                    chunk = await anext(body, None)
            except (HttpProtocolError, MuxError, TimeoutError) as exc:
                raise _Abort(f"the request body from the relay broke off: {exc!r}") from None
            if chunk is None:
                return
            yield chunk

    async def _reply(self, reply: ApiReply) -> None:
        await self.front.send_message(
            h11.Response(status_code=reply.status, headers=reply.headers), reply.body
        )

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
            if isinstance(response, h11.InformationalResponse):  # only a 101 gets here
                await self._splice(upstream, response)
            else:
                await self._respond(upstream, response)
        except BaseException:
            await self._stop_upload()
            self.pool.discard(upstream)
            raise

    # ----------------------------------------------------------------- request

    async def _start(self) -> h11.Response | h11.InformationalResponse:
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

    async def _send_head(
        self, upstream: UpstreamConnection
    ) -> h11.Response | h11.InformationalResponse:
        http = upstream.http
        if self.has_body:
            await http.send(self.head)
            self.uploading = asyncio.create_task(self._upload(http))
        else:
            await http.send_message(self.head, b"")
        try:
            async with asyncio.timeout(self.limits.response_timeout):
                return await http.receive_response()
        except TimeoutError:
            raise bad_gateway(
                f"the local server did not answer within {self.limits.response_timeout:g} s"
            ) from None

    async def _upload(self, http: HttpConnection) -> None:
        if self.body is not None:  # read already, for its signature
            for data in self.body.chunks():
                await http.send_data(data)
            await http.end_message()
            return
        body = self.front.receive_body()
        while True:
            try:
                async with asyncio.timeout(self.limits.idle_timeout):
                    chunk = await anext(body, None)
            except (HttpProtocolError, MuxError, TimeoutError) as exc:
                raise _Abort(f"the request body from the relay broke off: {exc!r}") from None
            if chunk is None:
                break
            await http.send_data(chunk)
        await http.end_message()

    async def _stop_upload(self) -> None:
        task, self.uploading = self.uploading, None
        if task is None:
            return
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # seen; what it means is decided by the caller

    def _failure(self, upstream: UpstreamConnection, exc: Exception) -> ForwardError:
        if isinstance(exc, HttpProtocolError):
            if upstream.received_nothing:
                return bad_gateway("the local server closed the connection without answering")
            return bad_gateway(f"bad response from the local server: {exc}")
        assert isinstance(exc, OSError)
        return bad_gateway(f"lost the connection to the local server: {describe_os_error(exc)}")

    # ----------------------------------------------------------------- response

    async def _response_body(
        self, upstream: UpstreamConnection, long_body: int | None = None
    ) -> AsyncIterator[bytes]:
        """The answer's body; ``long_body``: its length, to read it past h11 (the
        connection is closed afterwards instead of being kept)."""
        http = upstream.http
        body = http.receive_body() if long_body is None else http.receive_long_body(long_body)
        while True:
            try:
                if http.body_ready():  # no wait: no timer to set
                    chunk = await self._unless_revoked(anext(body, None))
                else:
                    async with asyncio.timeout(self.limits.idle_timeout):
                        chunk = await self._unless_revoked(anext(body, None))
            except (HttpProtocolError, TimeoutError) as exc:
                raise _Abort(f"the local server's response broke off: {exc!r}") from None
            if chunk is None:
                return
            yield chunk

    async def _unless_revoked(self, next_chunk: Awaitable[bytes | None]) -> bytes | None:
        """The next chunk of the answer, unless the client is revoked first (then the
        stream is cut: a revoked client gets nothing more, streamed or not)."""
        if self.verified is None:
            return await next_chunk
        if self.revoked.is_set():
            raise _Abort("the client was revoked")
        reading = asyncio.ensure_future(next_chunk)
        revoked = asyncio.ensure_future(self.revoked.wait())
        try:
            await asyncio.wait({reading, revoked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            revoked.cancel()
            if not reading.done():
                reading.cancel()
                await asyncio.wait({reading})
        if reading.cancelled():
            raise _Abort("the client was revoked")
        return reading.result()

    async def _respond(self, upstream: UpstreamConnection, response: h11.Response) -> None:
        front = self.front
        headers = response_headers(response.headers)
        mode = BodyMode.UNSIGNED
        if self.verified is not None and self.trust is not None:
            mode = choose_body_mode(
                self.verified,
                response.status_code,
                response.headers,
                self.trust.limits,
                head=self.request.method == b"HEAD",
            )
        if mode is BodyMode.BUFFERED:
            await self._respond_buffered(upstream, response, headers)
        elif mode is BodyMode.CHUNKED:
            await self._respond_chunked(upstream, response, headers)
        else:
            head = h11.Response(
                status_code=response.status_code, headers=headers, reason=response.reason
            )
            if upstream.http.body_ready():
                front.start_message(head)  # out with the body, in one frame
            else:
                await front.send(head)  # the body may take a while (an event stream)
            length = plain_body_length(self.request.method, response.status_code, response.headers)
            long_body = length if length is not None and length >= LONG_BODY else None
            async for chunk in self._response_body(upstream, long_body):
                await front.send_data(chunk)
        await front.end_message()
        await self._settle_upload()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %d", self.what, response.status_code)
        self.pool.release(upstream)

    async def _settle_upload(self) -> None:
        """The response is complete; what became of the request body?"""
        task = self.uploading
        if task is None:
            return
        if not task.done():
            # The server answered without reading all of it: the rest is moot, and the
            # connection cannot be reused (h11 sees the unfinished request).
            await self._stop_upload()
            return
        self.uploading = None
        error = task.exception()
        if isinstance(error, _Abort):
            raise error  # the relay's side broke: nothing more to say on this stream
        # An OSError: the server stopped reading after answering; the answer stands.

    async def _respond_buffered(
        self,
        upstream: UpstreamConnection,
        response: h11.Response,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """A small body of known length: read whole, signed in the reference headers."""
        assert self.trust is not None
        assert self.verified is not None
        cap = self.trust.limits.response_buffer_limit
        parts: list[bytes] = []
        size = 0
        async for chunk in self._response_body(upstream):
            size += len(chunk)
            if size > cap:
                raise _Abort("the local server sent more than its content-length")
            parts.append(chunk)
        body = b"".join(parts)
        signature = self.trust.signer.sign(
            self.verified, response.status_code, wire.body_hash(body), time.time()
        )
        await self.front.send(
            h11.Response(
                status_code=response.status_code,
                headers=headers + signature.headers(),
                reason=response.reason,
            )
        )
        if body:
            await self.front.send_data(body)

    async def _respond_chunked(
        self,
        upstream: UpstreamConnection,
        response: h11.Response,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """A streamed body: signed record by record as it comes (chunked-v1)."""
        assert self.trust is not None
        assert self.verified is not None
        signer = self.trust.signer
        signature = signer.sign(
            self.verified, response.status_code, wire.STREAM_SIGNING_V1, time.time()
        )
        stream = signer.stream(self.verified, signature)
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        headers.append((wire.RESP_BODY_SIGNING.encode(), wire.STREAM_SIGNING_V1.encode()))
        await self.front.send(
            h11.Response(
                status_code=response.status_code,
                headers=headers + signature.headers(),
                reason=response.reason,
            )
        )
        async for chunk in self._response_body(upstream):
            await self.front.send_data(stream.feed(chunk))
        await self.front.send_data(stream.end())

    async def _splice(
        self, upstream: UpstreamConnection, response: h11.InformationalResponse
    ) -> None:
        if self.uploading is not None:
            task, self.uploading = self.uploading, None
            await task
        self.pool.detach(upstream)  # the pipe owns the connection now
        try:
            upgrade = [(k, v) for k, v in response.headers if k in (b"upgrade", b"connection")]
            await self.front.send(
                h11.InformationalResponse(
                    status_code=101,
                    headers=response_headers(response.headers) + upgrade,
                    reason=response.reason,
                )
            )
            from_client = self.front.trailing_data()
            from_server = upstream.http.trailing_data()
            if self.verified is not None and self.trust is not None:
                await self._bridge(upstream, from_client, from_server)
                return
            if from_client:
                await upstream.channel.write(from_client)
            if from_server:
                await self.front.channel.write(from_server)
            log.debug("%s -> 101, spliced", self.what)
            await splice(self.front.channel, upstream.channel)
        finally:
            upstream.close()

    async def _bridge(
        self, upstream: UpstreamConnection, from_client: bytes, from_server: bytes
    ) -> None:
        """A signed WebSocket: envelopes to and from the client, plain frames upstream."""
        assert self.trust is not None
        assert self.verified is not None
        bridge = SignedWebSocketBridge(
            self.front.channel,
            upstream.channel,
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
    request: h11.Request, target: UpstreamTarget, *, signed_frames: bool = False
) -> h11.Request:
    """The request as the local server gets it: ``Host`` is the server's own address
    (the client's goes in ``x-forwarded-host``), hop-by-hop headers are dropped (an
    upgrade's are kept), and ``x-vk-relayed: 1`` replaces whatever the client sent."""
    named = _connection_tokens(request.headers) - _FRAMING
    chunked = _header(request.headers, b"transfer-encoding") is not None
    upgrade = _header(request.headers, b"upgrade")
    headers: list[tuple[bytes, bytes]] = [(b"host", target.host_header)]
    for name, value in request.headers:
        if name in _HOP_BY_HOP or name in _REPLACED or name in named:
            continue
        if name == b"content-length" and chunked:
            continue
        if signed_frames and name == b"sec-websocket-extensions":
            continue  # the connector re-frames the messages; no compression to carry over
        headers.append((name, value))
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    client_host = _header(request.headers, b"host")
    if client_host:
        headers.append((FORWARDED_HOST_HEADER, client_host))
    if upgrade is not None and b"upgrade" in named:
        headers += [(b"connection", b"upgrade"), (b"upgrade", upgrade)]
    headers.append((RELAYED_HEADER, b"1"))
    return h11.Request(method=request.method, target=request.target, headers=headers)


def response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The local server's response headers for the relay; h11 redoes the framing."""
    headers = list(headers)
    named = _connection_tokens(headers) - _FRAMING
    chunked = _header(headers, b"transfer-encoding") is not None
    return [
        (name, value)
        for name, value in headers
        if name not in _HOP_BY_HOP
        and name not in named
        and not (chunked and name == b"content-length")
    ]


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return bytes(value)
    return None


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def _is_upgrade(request: h11.Request) -> bool:
    return _header(request.headers, b"upgrade") is not None and b"upgrade" in _connection_tokens(
        request.headers
    )


def _has_body(request: h11.Request) -> bool:
    length = _header(request.headers, b"content-length")
    if _header(request.headers, b"transfer-encoding") is not None:
        return True
    with contextlib.suppress(ValueError):
        return length is not None and int(length) > 0
    return False

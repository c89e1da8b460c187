"""The Python client's side of the upgrade: offer a data channel through a verified relayed
call, and route later calls over it, with the relay as the fallback.

* The answer comes back as a signed relayed answer, which :class:`RelayClient` verifies
  before we read it: so the DTLS fingerprint in it is the host's, and aiortc then refuses
  any other certificate in the handshake.
* A call over the channel is signed exactly as a relayed one, and its answer is checked
  with the same :func:`check_response`.
* No double execution: a call whose answer does not come in time is sent through the relay
  with the *same* signature and nonce; if the host had run it, it refuses the replay and
  the call fails with :class:`MayHaveRunError`.
* A failed negotiation is not retried for ``retry_after_failure`` seconds; a channel that
  worked and dropped is retried on the next call.
* Extensions (``hello`` once the channel opens): bodies over ``inline_body`` stream to the
  host paced by its credit (``upload``); a call given up (a timeout, a stream left early,
  a cancelled task) is cancelled on the host (``cancel``). A host that does not answer the
  hello gets whole bodies only, and larger uploads go through the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..client.client import RelayClient
from ..client.errors import ClientError, HostRefusedError
from ..client.signing import BodyCheck, SignedRequest, check_response
from ..trust import wire
from .host import OFFER_PATH
from .limits import ChannelLimits
from .messages import (
    EXTENSIONS,
    Body,
    BodyEnd,
    Cancel,
    Credit,
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
    accept_answer,
    make_offer,
)

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)

CHUNK_BODY = 32 * 1024  # request body bytes per ``body`` message (as the host sends)
# The host's refusals (unsigned, through the relay or here): errors, never data. 408 and
# 413: a streamed upload that stalled or grew over the host's body limit.
_REFUSALS = frozenset({401, 403, 408, 413, 429})


class MayHaveRunError(ClientError):
    """The call timed out on the channel and the host refused the same signed call through
    the relay as a replay: it may have run once. It was not run twice."""


@dataclass(frozen=True, slots=True)
class P2POptions:
    ice_servers: Sequence[IceServer] = ()
    limits: ChannelLimits = field(default_factory=ChannelLimits)
    # A call over the channel, then through the relay: under the host's ±30 s clock window,
    # so the resent signature is still fresh (the reference waits 30 s).
    answer_timeout: float = 20.0
    open_timeout: float = 10.0  # the data channel, after the answer
    offer_timeout: float = 15.0  # the signed offer call through the relay
    retry_after_failure: float = 300.0
    # Bodies up to this go whole in the message (as the reference); larger ones stream
    # (the "upload" extension) or, with a host that does not offer it, go via the relay.
    inline_body: int = 256 * 1024
    hello_timeout: float = 2.0  # how long a large upload waits for the host's hello


@dataclass(frozen=True, slots=True)
class P2PResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    path: str  # "direct" or "relayed"


class _Credit:
    """How many request-body bytes the host will take now (its ``credit`` messages)."""

    def __init__(self) -> None:
        self.available = 0
        self.more = asyncio.Event()

    def add(self, amount: int) -> None:
        self.available += amount
        self.more.set()


class _NotDelivered(Exception):
    """An upload that did not reach its end: the host cannot have run it."""


class P2PClient:
    """Wraps a :class:`RelayClient`: later calls over the channel, the relay as fallback."""

    def __init__(self, relay: RelayClient, options: P2POptions | None = None) -> None:
        self.relay = relay
        self.options = options or P2POptions()
        self._pc: RTCPeerConnection | None = None
        self._pipe: MessagePipe | None = None
        self._pending: dict[str, asyncio.Future[HttpResponse]] = {}
        self._sockets: dict[str, ChannelWebSocket] = {}
        self._bodies: dict[str, asyncio.Queue[Body | BodyEnd]] = {}
        self._credits: dict[str, _Credit] = {}
        self._hello = asyncio.Event()
        self.host_extensions: frozenset[str] = frozenset()
        self._reader: asyncio.Task[None] | None = None
        self._failed_at: float | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.upgrades = 0
        self.last_error: str | None = None

    @property
    def direct(self) -> bool:
        return self._pipe is not None and not self._pipe.closed.is_set()

    async def aclose(self) -> None:
        await self._drop()

    # ----------------------------------------------------------- negotiation

    async def upgrade(self) -> bool:
        """Try to open the channel now; True when it is open. Never raises for a failed
        negotiation (the relay stays in use), except when aiortc is missing."""
        if self.direct:
            return True
        failed = self._failed_at
        if failed is not None and time.monotonic() - failed < self.options.retry_after_failure:
            return False
        try:
            await self._negotiate()
        except (NegotiationError, ClientError, TimeoutError, ValueError, KeyError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.info("webrtc: upgrade failed, staying on the relay: %s", self.last_error)
            self._failed_at = time.monotonic()
            await self._drop()
            return False
        self._failed_at = None
        self.upgrades += 1
        return True

    async def _negotiate(self) -> None:
        options = self.options
        pc, channel, offer = await make_offer(options.ice_servers, options.limits)
        self._pc = pc
        offer_id = str(uuid.uuid4())
        body = json.dumps({"sdp": offer, "session_id": offer_id}).encode()
        async with asyncio.timeout(options.offer_timeout):
            # Verified by RelayClient: a swapped or forged answer fails right here.
            response, raw = await self.relay.request(
                "POST", OFFER_PATH, body=body, headers={"content-type": "application/json"}
            )
        if response.status != 200:
            raise NegotiationError(f"the host refused the offer ({response.status})")
        envelope = json.loads(raw)
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if not (isinstance(data, dict) and envelope.get("success") is True):
            raise NegotiationError("the answer is not a success envelope")
        if data.get("session_id") != offer_id or not isinstance(data.get("sdp"), str):
            raise NegotiationError("the answer is for another offer")
        await accept_answer(pc, data["sdp"])
        pipe = MessagePipe(channel, options.limits)
        await pipe.wait_open(options.open_timeout)
        self._pipe = pipe
        self._hello = asyncio.Event()
        self.host_extensions = frozenset()
        self._reader = asyncio.create_task(self._read(pipe))
        await pipe.send(Hello(EXTENSIONS))

    async def _read(self, pipe: MessagePipe) -> None:
        while (message := await pipe.receive()) is not None:
            if isinstance(message, HttpResponse):
                waiter = self._pending.pop(message.id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
            elif isinstance(message, Credit):
                credit = self._credits.get(message.id)
                if credit is not None:
                    credit.add(message.bytes)
            elif isinstance(message, Hello):
                self.host_extensions = message.extensions
                self._hello.set()
            elif isinstance(message, Cancel):
                # The host gave the call up (its local server failed under the body).
                why = f"cancelled by the host: {message.reason or 'no reason given'}"
                inbox = self._bodies.get(message.id)
                if inbox is not None:
                    with contextlib.suppress(asyncio.QueueFull):
                        inbox.put_nowait(BodyEnd(message.id, why))
                waiter = self._pending.pop(message.id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(ClientError(why))
            elif isinstance(message, Body | BodyEnd):
                inbox = self._bodies.get(message.id)
                if inbox is not None:
                    try:
                        inbox.put_nowait(message)
                    except asyncio.QueueFull:  # a reader that does not keep up: bounded
                        pipe.close()
            elif isinstance(message, WsOpened | WsFrame | WsClose | WsError):
                socket = self._sockets.get(message.conn_id)
                if socket is not None:
                    socket._deliver(message)
        for socket in list(self._sockets.values()):
            socket._deliver(WsClose(socket.conn_id, 1006, "WebRTC disconnected"))
        for inbox in self._bodies.values():
            with contextlib.suppress(asyncio.QueueFull):
                inbox.put_nowait(BodyEnd("", "WebRTC disconnected"))
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("data channel closed"))
        self._pending.clear()
        for credit in self._credits.values():
            credit.more.set()
        log.info("webrtc: channel closed (%s); calls go through the relay", pipe.error or "closed")

    async def _drop(self) -> None:
        pipe, pc, reader = self._pipe, self._pc, self._reader
        self._pipe = self._pc = self._reader = None
        if pipe is not None:
            pipe.close()
        if reader is not None:
            reader.cancel()
        if pc is not None:
            await pc.close()

    def close_channel(self) -> None:
        """Drop the channel (a test's or a user's "force relayed" for the next call)."""
        if self._pipe is not None:
            self._pipe.close()

    # ----------------------------------------------------------- calls

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> P2PResponse:
        method = method.upper()
        if not self.direct:
            if self._pipe is not None:
                await self._drop()  # it worked and dropped: try again at once
                self._failed_at = None
            if self._failed_at is None:
                await self.upgrade()
        upload = self.direct and len(body) > self.options.inline_body
        if upload and not await self._offers("upload"):
            upload = False
            if len(body) * 4 // 3 + 64 * 1024 > self.options.limits.max_message:
                # Too big for one message, and the host takes no streamed upload.
                response, raw = await self.relay.request(method, path, body=body, headers=headers)
                return P2PResponse(response.status, dict(response.headers), raw, "relayed")
        if not self.direct:
            response, raw = await self.relay.request(method, path, body=body, headers=headers)
            return P2PResponse(response.status, dict(response.headers), raw, "relayed")
        signed = self.relay._sign(method, path, body)
        try:
            return await self._over_channel(method, signed, body, dict(headers or {}), upload)
        except _NotDelivered as exc:
            # The body never reached its end: the host cannot have run it. Signed anew.
            log.info("webrtc: %s %s upload broke off (%s); via the relay", method, path, exc)
            response, raw = await self.relay.request(method, path, body=body, headers=headers)
            return P2PResponse(response.status, dict(response.headers), raw, "relayed")
        except (TimeoutError, ConnectionError) as exc:
            log.info("webrtc: %s %s over the channel failed (%r); via the relay", method, path, exc)
            return await self._resend(method, signed, body, dict(headers or {}))

    async def _offers(self, extension: str) -> bool:
        """Whether the host's hello named ``extension`` (waiting a little for it)."""
        if not self._hello.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.hello_timeout):
                    await self._hello.wait()
        return extension in self.host_extensions

    async def _cancel(self, request_id: str) -> None:
        """Tell the host this call is given up (it stops its local request)."""
        pipe = self._pipe
        if pipe is not None and "cancel" in self.host_extensions and not pipe.closed.is_set():
            with contextlib.suppress(ConnectionError):
                await pipe.send(Cancel(request_id))

    async def _send_body(
        self, pipe: MessagePipe, request_id: str, body: bytes, waiter: asyncio.Future[HttpResponse]
    ) -> None:
        """The body in ``body`` messages, never more than the host's credit ahead; stops
        when the host answers first (a refusal). _NotDelivered: it did not get to its end."""
        credit = self._credits[request_id]
        view = memoryview(body)

        def answered() -> bool:
            if not waiter.done():
                return False
            if waiter.exception() is not None:  # the channel closed under the body
                raise _NotDelivered(str(waiter.exception()))
            return True

        for start in range(0, len(body), CHUNK_BODY):
            piece = bytes(view[start : start + CHUNK_BODY])
            while credit.available < len(piece):
                if answered():
                    return
                if pipe.closed.is_set():
                    raise _NotDelivered("the channel closed")
                credit.more.clear()
                head: asyncio.Future[object] = asyncio.ensure_future(asyncio.shield(waiter))
                more: asyncio.Future[object] = asyncio.ensure_future(credit.more.wait())
                try:
                    done, _ = await asyncio.wait(
                        {head, more},
                        timeout=self.options.answer_timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    head.cancel()
                    more.cancel()
                if not done:
                    raise _NotDelivered("no credit from the host in time")
            if answered():
                return
            credit.available -= len(piece)
            try:
                await pipe.send(Body(request_id, piece))
            except ConnectionError:
                raise _NotDelivered("the channel closed") from None
        try:
            await pipe.send(BodyEnd(request_id))
        except ConnectionError:
            raise _NotDelivered("the channel closed") from None

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[tuple[P2PResponse, AsyncIterator[bytes]]]:
        """A call whose answer body is handed out as it verifies (server-sent events, large
        downloads): over the channel with the streamed-body extension when one is open,
        else through the relay. Yields the head (``body`` empty) and the verified chunks."""
        method = method.upper()
        if not self.direct:
            await self.upgrade()
        pipe = self._pipe
        if pipe is None or not self.direct:
            async with self.relay.stream(method, path, body=body, headers=headers) as response:
                head = P2PResponse(response.status, dict(response.headers), b"", "relayed")
                yield head, response.iter_bytes()
            return
        signed = self.relay._sign(method, path, body)
        request_id = str(uuid.uuid4())
        waiter: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        inbox: asyncio.Queue[Body | BodyEnd] = asyncio.Queue(self.options.limits.max_queue)
        self._pending[request_id] = waiter
        self._bodies[request_id] = inbox
        finished = False
        try:
            all_headers = {**(headers or {}), **signed.headers()}
            await pipe.send(
                HttpRequest(
                    request_id,
                    method,
                    signed.path_and_query,
                    {k.lower(): [v] for k, v in all_headers.items()},
                    body,
                    stream=True,
                )
            )
            async with asyncio.timeout(self.options.answer_timeout):
                answer = await waiter
            flat = {k: v[0] for k, v in answer.headers.items() if v}
            if wire.RESP_SIGNATURE not in flat and answer.status in _REFUSALS:
                raise _refusal(answer.status, answer.body)
            check = self._check(signed, answer, flat)
            head = P2PResponse(answer.status, flat, b"", "direct")

            async def chunks() -> AsyncIterator[bytes]:
                nonlocal finished
                if not answer.stream:
                    finished = True
                    check.feed(answer.body)
                    check.finish()
                    if answer.body:
                        yield answer.body
                    return
                while True:
                    message = await inbox.get()
                    if isinstance(message, BodyEnd):
                        finished = True
                        if message.error:
                            raise ClientError(f"the answer broke off: {message.error}")
                        check.finish()
                        return
                    for payload in check.feed(message.data):
                        yield payload

            yield head, chunks()
        finally:
            self._pending.pop(request_id, None)
            self._bodies.pop(request_id, None)
            if not finished:  # left before the end (or failed): the host stops it
                await self._cancel(request_id)

    def _check(
        self, signed: SignedRequest, answer: HttpResponse, flat: dict[str, str]
    ) -> BodyCheck:
        # Every header line, for an answer that signs its headers (x-vk-resp-headers).
        lines = [(k.lower(), v) for k, values in answer.headers.items() for v in values]
        return check_response(
            self.relay.pairing.host_key,
            signed,
            answer.status,
            flat,
            lines,
            self.relay._learn_signed_headers,
        )

    async def _over_channel(
        self,
        method: str,
        signed: SignedRequest,
        body: bytes,
        headers: dict[str, str],
        upload: bool = False,
    ) -> P2PResponse:
        pipe = self._pipe
        assert pipe is not None
        all_headers = {**headers, **signed.headers()}
        request_id = str(uuid.uuid4())
        waiter: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        if upload:
            self._credits[request_id] = _Credit()
        answered = False
        try:
            await pipe.send(
                HttpRequest(
                    request_id,
                    method,
                    signed.path_and_query,
                    {k.lower(): [v] for k, v in all_headers.items()},
                    b"" if upload else body,
                    upload=upload,
                )
            )
            if upload:
                await self._send_body(pipe, request_id, body, waiter)
            # The answer's wait starts once the body is all out (an upload takes its time).
            async with asyncio.timeout(self.options.answer_timeout):
                answer = await waiter
            answered = True
        finally:
            self._pending.pop(request_id, None)
            self._credits.pop(request_id, None)
            if not answered:  # timed out, failed or cancelled: the host stops it
                await self._cancel(request_id)
        flat = {k: v[0] for k, v in answer.headers.items() if v}
        if wire.RESP_SIGNATURE not in flat and answer.status in _REFUSALS:
            # The host's refusals are not signed, through the relay or here: an error, never
            # data (so a forged one can only fail a call, never feed it).
            raise _refusal(answer.status, answer.body)
        check = self._check(signed, answer, flat)
        check.feed(answer.body)
        check.finish()
        return P2PResponse(answer.status, flat, answer.body, "direct")

    @contextlib.asynccontextmanager
    async def websocket(self, path: str) -> AsyncIterator[ChannelWebSocket]:
        """A WebSocket over the channel (signed like a relayed upgrade). Raises
        :class:`ClientError` when no channel is open or the host refuses it: the caller
        then uses :meth:`RelayClient.websocket` (a WebSocket is not moved between paths)."""
        if not self.direct:
            await self.upgrade()
        pipe = self._pipe
        if pipe is None or not self.direct:
            raise ClientError("no WebRTC channel open")
        signed = self.relay._sign("GET", path, b"")
        conn_id = str(uuid.uuid4())
        socket = ChannelWebSocket(pipe, conn_id, self.options.limits.max_queue)
        self._sockets[conn_id] = socket
        try:
            headers = {k.lower(): [v] for k, v in signed.headers().items()}
            await pipe.send(WsOpen(conn_id, signed.path_and_query, headers=headers))
            async with asyncio.timeout(self.options.answer_timeout):
                first = await socket._inbox.get()
            if not isinstance(first, WsOpened):
                detail = first.error if isinstance(first, WsError) else "closed"
                raise ClientError(f"the host did not open the WebSocket over WebRTC: {detail}")
            yield socket
        finally:
            self._sockets.pop(conn_id, None)
            if not socket.closed:
                with contextlib.suppress(ConnectionError):
                    await pipe.send(WsClose(conn_id, 1000))

    async def _resend(
        self, method: str, signed: SignedRequest, body: bytes, headers: dict[str, str]
    ) -> P2PResponse:
        relay = self.relay
        response = await relay._send_signed(method, signed, body, headers)
        if response.status_code == 401:
            # A refusal is not signed; either way this call is not sent a third time.
            try:
                raw = await response.aread()
            finally:
                await response.aclose()
            if b"replayed_nonce" in raw:
                raise MayHaveRunError(
                    f"{method} {signed.path_and_query}: no answer over WebRTC in time and the "
                    "host had seen this call already: it may have run (it was not run twice)"
                )
            raise _refusal(401, raw)
        check = await relay._check_head(signed, response)
        try:
            raw = await response.aread()
        finally:
            await response.aclose()
        check.feed(raw)
        check.finish()
        return P2PResponse(response.status_code, dict(response.headers), raw, "relayed")


class ChannelWebSocket:
    """One WebSocket over the data channel."""

    def __init__(self, pipe: MessagePipe, conn_id: str, max_queue: int) -> None:
        self._pipe = pipe
        self.conn_id = conn_id
        self._inbox: asyncio.Queue[WsOpened | WsFrame | WsClose | WsError] = asyncio.Queue(
            max_queue
        )
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""

    def _deliver(self, message: WsOpened | WsFrame | WsClose | WsError) -> None:
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:  # a reader that does not keep up: end it, bounded
            self._pipe.close()

    async def send_text(self, text: str) -> None:
        await self._pipe.send(WsFrame(self.conn_id, "text", text.encode()))

    async def send_bytes(self, data: bytes) -> None:
        await self._pipe.send(WsFrame(self.conn_id, "binary", data))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            await self._pipe.send(WsClose(self.conn_id, code, reason or None))

    async def recv(self) -> str | bytes | None:
        """The next message (text as str), or None once closed."""
        while not self.closed:
            message = await self._inbox.get()
            if isinstance(message, WsFrame):
                if message.msg_type == "text":
                    return message.payload.decode("utf-8", "replace")
                if message.msg_type == "binary":
                    return message.payload
            elif isinstance(message, WsClose | WsError):
                self.closed = True
                self.close_code = message.code if isinstance(message, WsClose) else 1006
                self.close_reason = (
                    message.reason or "" if isinstance(message, WsClose) else message.error
                )
        return None


def _refusal(status: int, body: bytes) -> HostRefusedError:
    try:
        obj = json.loads(body)
        reason, message = str(obj.get("reason", "")), str(obj.get("error", ""))
    except (ValueError, AttributeError):
        reason, message = "", body[:200].decode("utf-8", "replace")
    return HostRefusedError(status, reason[:64], message[:200])


__all__ = ["MayHaveRunError", "P2PClient", "P2POptions", "P2PResponse", "WebRtcUnavailable"]

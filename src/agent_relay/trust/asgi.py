"""``protect(app, data_dir=…)``: the trust layer as ASGI middleware in front of any Python
local server. It serves ``/api/relay-auth/server/*`` itself, lets local (non-relayed)
requests through untouched, and for relayed ones (``x-vk-relayed: 1``) checks the
request signature, signs the answer (whole, or in records when streamed) and turns a
signed WebSocket's messages into plain ones for the app and back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

from ..httpwire.policy import decode_target
from .admission import (
    Admission,
    Reply,
    RequestHead,
    ResponseOverrun,
    ResponseSealer,
    admit,
    admit_websocket,
    forwarded_headers,
    header_lines,
    lines_map,
)
from .body import BodyBuffer
from .errors import TrustError
from .frames import POLICY_VIOLATION, FrameCodec, FrameError, close_payload, parse_close_payload
from .host import TrustHost, error_reply
from .limits import TrustLimits
from .sessions import VerifiedRequest
from .signing import BodyMode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def protect(
    app: ASGIApp,
    *,
    data_dir: Path | str,
    limits: TrustLimits | None = None,
    trusted_keys_file: Path | None = None,
    clock: Callable[[], float] = time.time,
    allowed_hosts: Iterable[str] = (),
    signed_headers: bool = True,
) -> TrustMiddleware:
    """``allowed_hosts``: Host names besides loopback the local (not relayed) pairing
    routes answer on; a request addressed to any other name (DNS rebinding) is refused,
    and so is one another site made a browser send (trust/local.py)."""
    host = TrustHost.open(
        Path(data_dir),
        limits=limits,
        trusted_keys_file=trusted_keys_file,
        signed_headers=signed_headers,
    )
    host.local_hosts = host.local_hosts | {h.strip().lower() for h in allowed_hosts}
    return TrustMiddleware(app, host, clock=clock)


def _head(scope: Scope, *, relayed: bool, websocket: bool = False) -> RequestHead:
    raw = scope.get("raw_path")
    query = scope.get("query_string", b"")
    target = decode_target(raw or scope.get("path", "/").encode("latin-1"), query)
    lines = header_lines(scope.get("headers", []))
    return RequestHead(
        scope.get("method", "GET"),
        target,
        lines_map(lines),
        relayed=relayed,
        websocket=websocket,
        lines=lines,
    )


def _is_relayed(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name.lower() == b"x-vk-relayed":
            return bool(value.strip() == b"1")
    return False


class TrustMiddleware:
    def __init__(
        self, app: ASGIApp, host: TrustHost, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.app = app
        self.host = host
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # ----------------------------------------------------------------- HTTP

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        peer = str(client[0]) if client else "local"
        admission = admit(self.host, _head(scope, relayed=_is_relayed(scope)), peer, self.clock())
        if admission is None:
            await self.app(scope, receive, send)
            return
        try:
            # A refusal decided from the head is sent before any of the body is read.
            refused = admission.refusal or await _read_body(receive, admission)
            outcome = admission.finish(self.clock) if refused is None else refused
            if isinstance(outcome, Reply):
                await _send_reply(send, outcome)
                return
            assert outcome.verified is not None
            assert outcome.body is not None
            await self._signed_http(scope, _replay(outcome.body, receive), send, outcome.verified)
        finally:
            admission.close()

    async def _signed_http(
        self, scope: Scope, receive: Receive, send: Send, verified: VerifiedRequest
    ) -> None:
        inner_scope = dict(scope)
        # A client that signed its headers: the app gets only those (and the hop's own).
        inner_scope["headers"] = forwarded_headers(scope.get("headers", []), verified)
        extensions = dict(scope.get("extensions") or {})
        for name in ("http.response.pathsend", "http.response.zerocopy", "http.response.trailers"):
            extensions.pop(name, None)
        inner_scope["extensions"] = extensions
        sealer = ResponseSealer(
            self.host, verified, self.clock, head_request=scope["method"] == "HEAD"
        )
        start: Message = {}

        async def signing_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                start.update(message)
                sealed = sealer.head(message["status"], message.get("headers", []))
                if sealed is not None:
                    await send({**message, "headers": sealed.headers})
                return
            if kind != "http.response.body":
                await send(message)
                return
            more = message.get("more_body", False)
            if sealer.mode is BodyMode.UNSIGNED:
                await send(message)
                return
            try:
                out = sealer.feed(message.get("body", b""))
            except ResponseOverrun as exc:
                raise RuntimeError(str(exc)) from None
            if not more:
                late_head, tail = sealer.finish()
                if late_head is not None:
                    await send({**start, "headers": late_head.headers})
                out += tail
            if out or not more:
                await send({"type": "http.response.body", "body": out, "more_body": more})

        await self.app(inner_scope, receive, signing_send)

    # ----------------------------------------------------------------- WebSocket

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_relayed(scope):
            await self.app(scope, receive, send)
            return
        verified = admit_websocket(
            self.host, _head(scope, relayed=True, websocket=True), self.clock()
        )
        if isinstance(verified, Reply):
            await _refuse_websocket(scope, receive, send, verified)
            return
        bridge = _SignedWebSocket(self.host.frame_codec(verified), receive, send)
        unwatch = self.host.watch(verified.session_id, bridge.revoke)
        try:
            await self.app(scope, bridge.receive, bridge.send)
        finally:
            unwatch()
            bridge.finish()


class _SignedWebSocket:
    """The app sees plain messages; the client sees signed envelopes."""

    def __init__(self, codec: FrameCodec, receive: Receive, send: Send) -> None:
        self.codec = codec
        self._receive = receive
        self._send = send
        self._lock = asyncio.Lock()
        self._accepted = False
        self._closed = False
        self._revoked = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def revoke(self) -> None:
        self._revoked.set()
        task = asyncio.get_running_loop().create_task(
            self._close(POLICY_VIOLATION, "client revoked")
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def finish(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _close(self, code: int, reason: str) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(Exception):
                if self._accepted:
                    await self._send(
                        {
                            "type": "websocket.send",
                            "text": self.codec.encode("close", close_payload(code, reason)),
                        }
                    )
                await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def _send_envelope(self, msg_type: str, payload: bytes) -> None:
        async with self._lock:
            if self._closed:
                return
            await self._send(
                {"type": "websocket.send", "text": self.codec.encode(msg_type, payload)}
            )

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self._accepted = True
            await self._send(message)
        elif kind == "websocket.send":
            if message.get("text") is not None:
                await self._send_envelope("text", message["text"].encode())
            else:
                await self._send_envelope("binary", message.get("bytes") or b"")
        elif kind == "websocket.close":
            await self._close(message.get("code", 1000), message.get("reason") or "")
        elif not self._closed:
            await self._send(message)

    async def receive(self) -> Message:
        while True:
            if self._revoked.is_set():
                return {"type": "websocket.disconnect", "code": POLICY_VIOLATION}
            message = await self._next()
            if message is None:
                continue
            if message["type"] != "websocket.receive":
                return message
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            try:
                msg_type, payload = self.codec.decode(raw)
            except FrameError as exc:
                await self._close(POLICY_VIOLATION, exc.reason)
                return {"type": "websocket.disconnect", "code": POLICY_VIOLATION}
            if msg_type == "text":
                return {"type": "websocket.receive", "text": payload.decode()}
            if msg_type == "binary":
                return {"type": "websocket.receive", "bytes": payload}
            if msg_type == "ping":
                await self._send_envelope("pong", payload)
            elif msg_type == "close":
                code, reason = parse_close_payload(payload)
                await self._close(
                    code if 1000 <= code < 5000 and code not in (1005, 1006) else 1000, reason
                )
                return {"type": "websocket.disconnect", "code": code}

    async def _next(self) -> Message | None:
        """The next message from the client, or None when a revocation came first."""
        receiving = asyncio.ensure_future(self._receive())
        revoked = asyncio.ensure_future(self._revoked.wait())
        try:
            await asyncio.wait({receiving, revoked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            revoked.cancel()
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
        if receiving.cancelled():
            return None
        return receiving.result()


async def _read_body(receive: Receive, admission: Admission) -> Reply | None:
    """Feed the request body to the admission; a refusal (too big, client gone) or None."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return error_reply(
                TrustError(400, "bad_request", "the client went away"), admission.now
            )
        refused = admission.feed(message.get("body", b""))
        if refused is not None:
            return refused
        if not message.get("more_body", False):
            return None


def _replay(body: BodyBuffer, receive: Receive) -> Receive:
    chunks = iter(list(body.chunks()) or [b""])
    pending = next(chunks)
    done = False

    async def replay() -> Message:
        nonlocal pending, done
        if done:
            return await receive()
        chunk = pending
        following = next(chunks, None)
        if following is None:
            done = True
            return {"type": "http.request", "body": chunk, "more_body": False}
        pending = following
        return {"type": "http.request", "body": chunk, "more_body": True}

    return replay


async def _send_reply(send: Send, reply: Reply) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, reply: Reply) -> None:
    """Answer the upgrade with the error (status, reason, host time) when the server
    allows it; else refuse it with a close (the server answers 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": reply.status,
                "headers": reply.headers,
            }
        )
        await send({"type": "websocket.http.response.body", "body": reply.body, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})

"""``protect(app, data_dir=…)``: the trust layer as ASGI middleware in front of any Python
local server. It serves ``/api/relay-auth/server/*`` itself, lets local (non-relayed)
requests through untouched, and for relayed ones (``x-vk-relayed: 1``) checks the
request signature, signs the answer (whole, or in records when streamed) and turns a
signed WebSocket's messages into plain ones for the app and back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from . import wire
from .body import BodyBuffer
from .errors import TrustError
from .frames import POLICY_VIOLATION, FrameCodec, FrameError, close_payload, parse_close_payload
from .host import (
    ENROLLMENT_CODE_PATH,
    MAX_API_BODY,
    UNSIGNED_PATHS,
    ApiReply,
    TrustHost,
    error_reply,
    is_api_path,
    relay_address,
)
from .limits import TrustLimits
from .sessions import VerifiedRequest
from .signing import BodyMode, choose_body_mode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SYNC_INTERVAL = 1.0  # how often the trusted-client store is checked for outside changes


def protect(
    app: ASGIApp,
    *,
    data_dir: Path | str,
    limits: TrustLimits | None = None,
    trusted_keys_file: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> TrustMiddleware:
    host = TrustHost(Path(data_dir), limits=limits, trusted_keys_file=trusted_keys_file)
    return TrustMiddleware(app, host, clock=clock)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _target(scope: Scope) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope.get("path", "/")
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class TrustMiddleware:
    def __init__(
        self, app: ASGIApp, host: TrustHost, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.app = app
        self.host = host
        self.clock = clock
        self._synced_at = 0.0

    def _now(self) -> float:
        now = self.clock()
        if now - self._synced_at >= SYNC_INTERVAL or now < self._synced_at:
            self._synced_at = now
            self.host.sync()
        return now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # ----------------------------------------------------------------- HTTP

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        relayed = headers.get("x-vk-relayed", "").strip() == "1"
        path = scope.get("path", "/")
        if not relayed and not is_api_path(path):
            await self.app(scope, receive, send)
            return
        now = self._now()
        limits = self.host.limits
        api = is_api_path(path)
        body = BodyBuffer(limits.body_memory_limit, MAX_API_BODY if api else limits.body_limit)
        try:
            try:
                await _read_body(receive, body)
            except TrustError as exc:
                await _send_reply(send, error_reply(exc, now))
                return
            if relayed:
                address = relay_address(headers)
            else:
                client = scope.get("client")
                address = str(client[0]) if client else "local"
            verified: VerifiedRequest | None = None
            if relayed and not (api and (path in UNSIGNED_PATHS or path == ENROLLMENT_CODE_PATH)):
                try:
                    verified = self.host.verify(
                        scope["method"], _target(scope), headers, body.h_body, now
                    )
                except TrustError as exc:
                    await _send_reply(send, error_reply(exc, now))
                    return
            if api:
                reply = self.host.handle_api(
                    scope["method"],
                    path,
                    body.read_all(),
                    relayed=relayed,
                    address=address,
                    now=now,
                )
                if verified is not None:
                    signature = self.host.signer.sign(
                        verified, reply.status, wire.body_hash(reply.body), self.clock()
                    )
                    reply = ApiReply(reply.status, reply.body, reply.headers + signature.headers())
                await _send_reply(send, reply)
                return
            assert verified is not None
            await self._signed_http(scope, _replay(body, receive), send, verified)
        finally:
            body.close()

    async def _signed_http(
        self, scope: Scope, receive: Receive, send: Send, verified: VerifiedRequest
    ) -> None:
        host = self.host
        limits = host.limits
        inner_scope = dict(scope)
        extensions = dict(scope.get("extensions") or {})
        for name in ("http.response.pathsend", "http.response.zerocopy", "http.response.trailers"):
            extensions.pop(name, None)
        inner_scope["extensions"] = extensions
        head: dict[str, Any] = {}
        mode: BodyMode | None = None
        buffered: list[bytes] = []
        buffered_size = 0
        stream = None

        async def signing_send(message: Message) -> None:
            nonlocal mode, buffered_size, stream
            kind = message["type"]
            if kind == "http.response.start":
                head.update(message)
                mode = choose_body_mode(
                    verified,
                    message["status"],
                    message.get("headers", []),
                    limits,
                    head=scope["method"] == "HEAD",
                )
                if mode is BodyMode.UNSIGNED:
                    await send(message)
                elif mode is BodyMode.CHUNKED:
                    signature = host.signer.sign(
                        verified, message["status"], wire.STREAM_SIGNING_V1, self.clock()
                    )
                    stream = host.signer.stream(verified, signature)
                    out_headers = [
                        (k, v)
                        for k, v in message.get("headers", [])
                        if k.lower() not in (b"content-length", b"transfer-encoding")
                    ]
                    out_headers.append(
                        (wire.RESP_BODY_SIGNING.encode(), wire.STREAM_SIGNING_V1.encode())
                    )
                    await send({**message, "headers": out_headers + signature.headers()})
                return
            if kind != "http.response.body":
                await send(message)
                return
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if mode is BodyMode.UNSIGNED:
                await send(message)
            elif mode is BodyMode.CHUNKED:
                assert stream is not None
                out = stream.feed(data) if data else b""
                if not more:
                    out += stream.end()
                if out or not more:
                    await send({"type": "http.response.body", "body": out, "more_body": more})
            else:
                buffered.append(data)
                buffered_size += len(data)
                if buffered_size > limits.response_buffer_limit * 2:
                    raise RuntimeError("the app sent more body than its content-length")
                if not more:
                    whole = b"".join(buffered)
                    signature = host.signer.sign(
                        verified, head["status"], wire.body_hash(whole), self.clock()
                    )
                    await send(
                        {**head, "headers": list(head.get("headers", [])) + signature.headers()}
                    )
                    await send({"type": "http.response.body", "body": whole, "more_body": False})

        await self.app(inner_scope, receive, signing_send)

    # ----------------------------------------------------------------- WebSocket

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        if headers.get("x-vk-relayed", "").strip() != "1":
            await self.app(scope, receive, send)
            return
        now = self._now()
        try:
            verified = self.host.verify(
                "GET", _target(scope), headers, wire.EMPTY_BODY_HASH, now, allow_query=True
            )
        except TrustError as exc:
            await _refuse_websocket(scope, receive, send, error_reply(exc, now))
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


async def _read_body(receive: Receive, body: BodyBuffer) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise TrustError(400, "bad_request", "the client went away")
        body.add(message.get("body", b""))
        if not message.get("more_body", False):
            return


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


async def _send_reply(send: Send, reply: ApiReply) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, reply: ApiReply) -> None:
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

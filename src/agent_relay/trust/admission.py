"""The trust layer's request admission and response sealing, sans-IO: the one place that
decides whether a request reaches the local server and how its answer is signed.

An adapter (the connector's forwarder, the ASGI middleware, later a WebRTC data channel)
turns its own request into a :class:`RequestHead`, calls :func:`admit`, feeds the body
into the :class:`Admission` and calls :meth:`Admission.finish`; it gets either a
:class:`Reply` to send as is, or :class:`Admitted` (forward the request, seal the answer
with a :class:`ResponseSealer`). Time is passed in; nothing here reads a file, a socket
or a clock."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from . import wire
from .body import BodyBuffer
from .errors import TrustError
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
from .local import cross_site, host_allowed
from .sessions import Prechecked, VerifiedRequest
from .signing import BodyMode, ResponseSignature, StreamSigner, choose_body_mode

Reply = ApiReply
Headers = list[tuple[bytes, bytes]]


def header_map(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names lowercased, the first value of each kept: what the checks read."""
    return lines_map(header_lines(headers))


def lines_map(lines: Iterable[tuple[str, str]]) -> dict[str, str]:
    """:func:`header_map` of what :func:`header_lines` decoded already."""
    out: dict[str, str] = {}
    for name, value in lines:
        if name not in out:
            out[name] = value
    return out


def header_lines(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """Every header line, names lowercased: what the signed-headers check reads."""
    return tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers)


# Passed on besides the signed headers of a request that signs its headers: what the
# trust layer itself reads (the signature, the stream opt-in), the framing (each hop's
# own), and what the host sets itself (Host: its local server's; x-vk-relayed).
_PASSED_WITH_SIGNED = frozenset(
    {
        *wire.REQUEST_SIGNATURE_FIELDS,
        wire.SIG_HEADERS,
        "content-length",
        "transfer-encoding",
        "host",
        "x-vk-relayed",
    }
)


def forwarded_header_names(verified: VerifiedRequest | None) -> frozenset[str] | None:
    """The request headers the local server may get (lower case), or None for all: a
    request that signed its headers (x-vk-sig-headers) has only those forwarded, plus
    :data:`_PASSED_WITH_SIGNED`; so a relay can add nothing (a Cookie, an
    Authorization, an X-Forwarded-For) and change nothing (the signature covers the
    rest). A reference client's request, which signs no headers, is forwarded as it
    always was. The one rule for every adapter."""
    if verified is None or verified.signed_headers is None:
        return None
    return _passed_with(verified.signed_headers)


@functools.lru_cache(maxsize=256)
def _passed_with(signed_headers: tuple[str, ...]) -> frozenset[str]:
    """A client signs the same list request after request: the set is made once."""
    signed = {n for n in signed_headers if wire.signable_request_header(n)}
    return frozenset(signed) | _PASSED_WITH_SIGNED


def forwarded_headers(
    headers: Iterable[tuple[bytes, bytes]], verified: VerifiedRequest | None
) -> list[tuple[bytes, bytes]]:
    """``headers`` as the local server may get them (:func:`forwarded_header_names`)."""
    names = forwarded_header_names(verified)
    if names is None:
        return list(headers)
    return [(k, v) for k, v in headers if k.decode("latin-1").lower() in names]


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A request as the trust layer sees it. ``target`` is the path and query as sent,
    decoded as latin-1 (``httpwire.decode_target``), ``headers`` from :func:`header_map`;
    ``websocket``: an upgrade, whose signature may ride in the query."""

    method: str
    target: str
    headers: Mapping[str, str]
    relayed: bool = True
    websocket: bool = False
    # Every header line (:func:`header_lines`): a request that signs its headers is
    # checked over all the values it carries, not the first of each.
    lines: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


@dataclass(frozen=True, slots=True)
class Admitted:
    """Forward the request: ``verified`` signed it (None for a local request the trust
    layer lets through untouched); ``body`` holds it, read whole (its hash was checked)."""

    verified: VerifiedRequest | None
    body: BodyBuffer | None


class Admission:
    """One request on its way in: body fed chunk by chunk, then :meth:`finish`."""

    def __init__(self, host: TrustHost, head: RequestHead, peer: str, now: float) -> None:
        self.host = host
        self.head = head
        self.now = now
        self.api = is_api_path(head.path)
        self.address = relay_address(head.headers) if head.relayed else peer
        limits = host.limits
        self.signed = head.relayed and not (
            self.api and (head.path in UNSIGNED_PATHS or head.path == ENROLLMENT_CODE_PATH)
        )
        self.body = BodyBuffer(
            limits.body_memory_limit, MAX_API_BODY if self.api else limits.body_limit
        )
        self._prechecked: Prechecked | None = None
        # Decided from the head alone: the adapter sends it without reading the body.
        self.refusal = self._precheck()

    def _precheck(self) -> Reply | None:
        """What needs no body, checked before any of it is read (or spilled to disk): a
        signed request's four values, timestamp, session and nonce; a local pairing
        call's Host and origin (trust/local.py)."""
        head, now = self.head, self.now
        try:
            if self.signed:
                self._prechecked = self.host.precheck(
                    head.target, head.headers, now, allow_query=head.websocket
                )
            elif not head.relayed:
                if not host_allowed(head.headers.get("host"), self.host.local_hosts):
                    raise TrustError(421, "wrong_host", "local pairing answers only on localhost")
                if cross_site(head.headers):
                    raise TrustError(403, "cross_site", "a request from another site is refused")
        except TrustError as exc:
            return error_reply(exc, now)
        return None

    def feed(self, data: bytes) -> Reply | None:
        """Take body bytes; a :class:`Reply` (413) when the body is too big, or the
        refusal already decided from the head."""
        if self.refusal is not None:
            return self.refusal
        try:
            self.body.add(data)
        except TrustError as exc:
            return error_reply(exc, self.now)
        return None

    def finish(self, clock: Callable[[], float]) -> Reply | Admitted:
        """The whole body is in. ``clock`` dates a signed pairing-route answer."""
        if self.refusal is not None:
            return self.refusal
        head, host, now = self.head, self.host, self.now
        verified: VerifiedRequest | None = None
        if self.signed:
            try:
                verified = host.verify(
                    head.method,
                    head.target,
                    head.headers,
                    self.body.h_body,
                    now,
                    allow_query=head.websocket,
                    lines=head.lines,
                    prechecked=self._prechecked,
                )
            except TrustError as exc:
                return error_reply(exc, now)
        if not self.api:
            return Admitted(verified, self.body)
        reply = host.handle_api(
            head.method,
            head.path,
            self.body.read_all(),
            relayed=head.relayed,
            address=self.address,
            now=now,
        )
        if verified is not None:
            signature = host.signer.sign(
                verified, reply.status, wire.body_hash(reply.body), clock(), reply.headers
            )
            reply = Reply(reply.status, reply.body, reply.headers + signature.headers())
        return reply

    def close(self) -> None:
        self.body.close()


def admit(host: TrustHost, head: RequestHead, peer: str, now: float) -> Admission | None:
    """Start admitting ``head``; None when the trust layer has no say (a local request
    outside the pairing routes: the adapter passes it through untouched)."""
    if not head.relayed and not is_api_path(head.path):
        return None
    host.maybe_sync(now)
    return Admission(host, head, peer, now)


def admit_websocket(host: TrustHost, head: RequestHead, now: float) -> Reply | VerifiedRequest:
    """A relayed WebSocket upgrade (no body): its verified signer, or the refusal."""
    host.maybe_sync(now)
    try:
        return host.verify(
            "GET",
            head.target,
            head.headers,
            wire.EMPTY_BODY_HASH,
            now,
            allow_query=True,
            lines=head.lines,
        )
    except TrustError as exc:
        return error_reply(exc, now)


class ResponseOverrun(Exception):
    """The local server sent more body than its Content-Length: the answer is cut."""


@dataclass(frozen=True, slots=True)
class SealedHead:
    status: int
    headers: Headers


class ResponseSealer:
    """Signs one answer: :meth:`head` with the local server's status and headers (the
    head to send now, or None while a buffered body is collected), :meth:`feed` with each
    body chunk (the bytes to send now), :meth:`finish` at the end (a deferred head, if
    any, and the last bytes)."""

    def __init__(
        self,
        host: TrustHost,
        verified: VerifiedRequest,
        clock: Callable[[], float],
        *,
        head_request: bool = False,
    ) -> None:
        self.host = host
        self.verified = verified
        self.clock = clock
        self.head_request = head_request
        self.mode = BodyMode.UNSIGNED
        self._status = 0
        self._headers: Headers = []
        self._parts: list[bytes] = []
        self._size = 0
        self._stream: StreamSigner | None = None

    def head(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> SealedHead | None:
        headers = list(headers)
        limits = self.host.limits
        self.mode = choose_body_mode(self.verified, status, headers, limits, head=self.head_request)
        self._status = status
        if self.mode is BodyMode.UNSIGNED:
            return SealedHead(status, headers)
        if self.mode is BodyMode.BUFFERED:
            self._headers = headers
            return None
        out = [
            (k, v) for k, v in headers if k.lower() not in (b"content-length", b"transfer-encoding")
        ]
        signature = self._sign(wire.STREAM_SIGNING_V1, out)
        self._stream = self.host.signer.stream(self.verified, signature)
        out.append((wire.RESP_BODY_SIGNING.encode(), wire.STREAM_SIGNING_V1.encode()))
        return SealedHead(status, out + signature.headers())

    def feed(self, data: bytes) -> bytes:
        if self.mode is BodyMode.UNSIGNED:
            return data
        if self.mode is BodyMode.CHUNKED:
            assert self._stream is not None
            return self._stream.feed(data) if data else b""
        self._size += len(data)
        if self._size > self.host.limits.response_buffer_limit:
            raise ResponseOverrun("the local server sent more than its content-length")
        self._parts.append(data)
        return b""

    def finish(self) -> tuple[SealedHead | None, bytes]:
        if self.mode is BodyMode.UNSIGNED:
            return None, b""
        if self.mode is BodyMode.CHUNKED:
            assert self._stream is not None
            return None, self._stream.end()
        whole = b"".join(self._parts)
        signature = self._sign(wire.body_hash(whole), self._headers)
        return SealedHead(self._status, self._headers + signature.headers()), whole

    def _sign(self, h_body: str, headers: Headers) -> ResponseSignature:
        return self.host.signer.sign(self.verified, self._status, h_body, self.clock(), headers)

"""Signing answers (sans-IO). A body of known, small length is signed whole with the
reference headers; a streamed one (no length, server-sent events, a big download) is
framed into signed records as it goes, for clients that asked for it (docs/signing.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import wire
from .limits import TrustLimits
from .sessions import VerifiedRequest


class BodyMode(Enum):
    BUFFERED = "buffered"  # whole body signed in the reference headers
    CHUNKED = "chunked"  # records, each signed (chunked-v1)
    UNSIGNED = "unsigned"  # a reference client's streamed body: it would not verify anyway


def choose_body_mode(
    request: VerifiedRequest,
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    limits: TrustLimits,
    *,
    head: bool = False,
) -> BodyMode:
    if head or status in (204, 304) or 100 <= status < 200:
        return BodyMode.BUFFERED  # no body: nothing to stream
    length: int | None = None
    streaming = False
    for name, value in headers:
        name = name.lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"content-type" and value.lower().startswith(b"text/event-stream"):
            streaming = True
        elif name == b"transfer-encoding":
            length = None
            streaming = True
    if not streaming and length is not None and 0 <= length <= limits.response_buffer_limit:
        return BodyMode.BUFFERED
    return BodyMode.CHUNKED if request.accepts_signed_stream else BodyMode.UNSIGNED


@dataclass(frozen=True, slots=True)
class ResponseSignature:
    ts: int
    nonce: str
    signature: bytes
    # The answer's headers the signature covers (RESP_HEADERS), or None: an answer to a
    # request without signed headers (a reference client's), whose headers are not signed.
    header_names: tuple[str, ...] | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (wire.RESP_TS.encode(), str(self.ts).encode()),
            (wire.RESP_NONCE.encode(), self.nonce.encode()),
            (wire.RESP_SIGNATURE.encode(), wire.b64encode(self.signature).encode()),
        ]
        if self.header_names is not None:
            listed = wire.format_header_list(self.header_names)
            out.append((wire.RESP_HEADERS.encode(), listed.encode()))
        return out


class ResponseSigner:
    def __init__(self, host_key: Ed25519PrivateKey) -> None:
        self.host_key = host_key

    def sign(
        self,
        request: VerifiedRequest,
        status: int,
        h_body: str,
        now: float,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> ResponseSignature:
        """``h_body`` is ``H(body)``, or ``wire.STREAM_SIGNING_V1`` for a framed body.
        ``headers``: the answer's headers as they leave; when the request signed its
        headers or its client reads signed answer headers (``signs_answer_headers``),
        the signable ones among them are signed too and named in RESP_HEADERS, whose
        digest is in the signed string: removing that header breaks the signature."""
        ts = int(now)
        nonce = str(uuid.uuid4())
        names = h_headers = None
        if request.signs_answer_headers:
            lines = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]
            names = wire.header_names(lines, response=True)
            h_headers = wire.headers_hash(names, lines)
        message = wire.response_message(
            ts,
            status,
            request.path_and_query,
            request.session_id,
            request.nonce,
            nonce,
            h_body,
            h_headers,
        )
        return ResponseSignature(ts, nonce, self.host_key.sign(message), names)

    def stream(self, request: VerifiedRequest, signature: ResponseSignature) -> StreamSigner:
        return StreamSigner(self.host_key, request.session_id, request.nonce, signature.nonce)


class StreamSigner:
    """Turns body bytes into signed records: u32 BE length, payload (≤ 64 KiB), and the
    Ed25519 signature over ``wire.stream_chunk_message``; ``seq`` from 1; an empty record
    ends the body. Each :meth:`feed` emits at once (no coalescing), so server-sent events
    reach the client as they happen."""

    def __init__(
        self, key: Ed25519PrivateKey, session_id: str, request_nonce: str, response_nonce: str
    ) -> None:
        self._key = key
        self._session_id = session_id
        self._request_nonce = request_nonce
        self._response_nonce = response_nonce
        self.seq = 0
        self.ended = False

    def _record(self, payload: bytes) -> bytes:
        self.seq += 1
        message = wire.stream_chunk_message(
            self._session_id, self._request_nonce, self._response_nonce, self.seq, payload
        )
        return wire.CHUNK_HEADER.pack(len(payload)) + payload + self._key.sign(message)

    def feed(self, data: bytes) -> bytes:
        if self.ended:
            raise RuntimeError("the stream already ended")
        view = memoryview(data)
        step = wire.MAX_CHUNK_PAYLOAD
        return b"".join(self._record(bytes(view[i : i + step])) for i in range(0, len(view), step))

    def end(self) -> bytes:
        record = self._record(b"")
        self.ended = True
        return record

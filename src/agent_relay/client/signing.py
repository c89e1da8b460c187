"""Signing requests and checking the host's answers (docs/protocol.md section 6 and our streamed
body records), without I/O. The asyncio client feeds these with what it sends and reads.

A response check is bound to the request it answers: same signing session, same request
nonce, same path. So the relay can neither forge an answer nor hand us an old one or one
meant for another request or session."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..trust import wire
from .errors import VerificationError

MAX_NONCE_LENGTH = 128


@dataclass(frozen=True)
class SignedRequest:
    """The four signature values of one request; ``headers()`` for HTTP, ``query()``
    for a WebSocket upgrade (browsers cannot set headers there)."""

    session_id: str
    ts: int
    nonce: str
    signature_b64: str
    path_and_query: str
    # The request headers signed (x-vk-sig-headers), or None: a request signed the
    # reference way, whose answer's headers are not signed either.
    header_names: tuple[str, ...] | None = None

    def headers(self) -> dict[str, str]:
        out = {
            wire.SIG_SESSION: self.session_id,
            wire.SIG_TS: str(self.ts),
            wire.SIG_NONCE: self.nonce,
            wire.SIG_SIGNATURE: self.signature_b64,
            wire.ACCEPT_STREAM_SIGNING: "1",
            wire.ACCEPT_SIGNED_HEADERS: "1",
        }
        if self.header_names is not None:
            out[wire.SIG_HEADERS] = wire.format_header_list(self.header_names)
        return out

    def query_pairs(self) -> list[tuple[str, str]]:
        return [
            (wire.SIG_SESSION, self.session_id),
            (wire.SIG_TS, str(self.ts)),
            (wire.SIG_NONCE, self.nonce),
            (wire.SIG_SIGNATURE, self.signature_b64),
        ]


def sign_request(
    key: Ed25519PrivateKey,
    session_id: str,
    method: str,
    path_and_query: str,
    body: bytes,
    now: int,
    nonce: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> SignedRequest:
    """``headers``: the request headers that will be sent (besides the signature's own
    and the two ``x-vk-accept-signed-*``, which are signed too); given, they are signed
    (x-vk-sig-headers) and the host passes on only them. None: the reference way, for
    a host not known to verify signed headers (Pairing.signs_headers)."""
    nonce = nonce or str(uuid.uuid4())
    names = h_headers = None
    if headers is not None:
        lines = [(k.lower(), v) for k, v in headers.items()]
        lines += [(wire.ACCEPT_STREAM_SIGNING, "1"), (wire.ACCEPT_SIGNED_HEADERS, "1")]
        names = wire.header_names(lines, response=False)
        h_headers = wire.headers_hash(names, lines)
    message = wire.request_message(
        now, method.upper(), path_and_query, session_id, nonce, wire.body_hash(body), h_headers
    )
    signature = wire.b64encode(key.sign(message))
    return SignedRequest(session_id, now, nonce, signature, path_and_query, names)


def sign_refresh(key: Ed25519PrivateKey, client_id: str, now: int) -> dict[str, str]:
    nonce = str(uuid.uuid4())
    signature = key.sign(wire.refresh_message(now, nonce, client_id))
    return {
        "client_id": client_id,
        "timestamp": str(now),
        "nonce": nonce,
        "signature_b64": wire.b64encode(signature),
    }


def verify_signature(key: Ed25519PublicKey, signature: bytes, message: bytes, what: str) -> None:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise VerificationError(f"{what}: the host's signature does not verify") from None


class BodyCheck:
    """The check of one answer: made from its head by ``check_response``, then fed the
    body. For a whole body (``streamed`` False) the header signature covers H(body), so
    nothing is authentic before ``finish()``: keep the data until then. For a streamed
    body each record is checked as it completes; ``feed`` returns verified payloads."""

    def __init__(
        self,
        host_key: Ed25519PublicKey,
        request: SignedRequest,
        status: int,
        ts: str,
        response_nonce: str,
        signature: bytes,
        streamed: bool,
        h_headers: str | None = None,
        verified_headers: list[tuple[str, str]] | None = None,
        on_headers_verified: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self._h_headers = h_headers
        # The answer's headers the host signed (all of them checked with the signature);
        # None when the request did not sign headers (then none of the answer's are).
        self.verified_headers = verified_headers
        # Called once the signature checked out with the headers' digest in it: the host
        # verifies signed headers (the client learns it for the pairing, for good).
        self.on_headers_verified = on_headers_verified
        self.streamed = streamed
        self._key = host_key
        self._request = request
        self._ts = ts
        self._response_nonce = response_nonce
        self._signature = signature
        self._digest = hashlib.sha256()
        self._stream: StreamVerifier | None = None
        self.done = False
        if streamed:
            self._verify_head(wire.STREAM_SIGNING_V1)
            self._stream = StreamVerifier(
                host_key, request.session_id, request.nonce, response_nonce
            )

    def _verify_head(self, h_body: str) -> None:
        message = wire.response_message(
            self._ts,
            self.status,
            self._request.path_and_query,
            self._request.session_id,
            self._request.nonce,
            self._response_nonce,
            h_body,
            self._h_headers,
        )
        verify_signature(self._key, self._signature, message, f"answer ({self.status})")
        if self._h_headers is not None and self.on_headers_verified is not None:
            self.on_headers_verified()

    def feed(self, data: bytes) -> list[bytes]:
        """Body bytes as read. Streamed: the payloads of the records completed (all
        verified). Whole body: always empty (the data is not authentic yet)."""
        if self.done:
            if data:
                raise VerificationError("data after the end of the signed body")
            return []
        if self._stream is not None:
            payloads = self._stream.feed(data)
            self.done = self._stream.done
            return payloads
        self._digest.update(data)
        return []

    def finish(self) -> None:
        """At the end of the body: raises unless all of it was authentic and complete."""
        if self._stream is not None:
            self._stream.finish()
        elif not self.done:
            digest = self._digest.digest()
            self._verify_head(wire.b64encode(digest))
        self.done = True


def check_response(
    host_key: Ed25519PublicKey,
    request: SignedRequest,
    status: int,
    headers: Mapping[str, str],
    lines: Sequence[tuple[str, str]] = (),
    on_headers_verified: Callable[[], None] | None = None,
) -> BodyCheck:
    """Start checking the answer to ``request`` from its status and headers (names in
    lower case; ``lines``: every header line, for an answer that signs its headers).
    Raises VerificationError when it carries no well-formed signature, or (streamed)
    when the header signature is wrong. ``on_headers_verified``: called when a
    signature that covers the answer's headers checks out."""
    ts = headers.get(wire.RESP_TS)
    response_nonce = headers.get(wire.RESP_NONCE)
    signature_b64 = headers.get(wire.RESP_SIGNATURE)
    if ts is None or response_nonce is None or signature_b64 is None:
        raise VerificationError(f"the answer ({status}) carries no host signature")
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 20):
        raise VerificationError("the answer's signature timestamp is malformed")
    if not (0 < len(response_nonce) <= MAX_NONCE_LENGTH and response_nonce.isprintable()):
        raise VerificationError("the answer's nonce is malformed")
    if "|" in response_nonce:
        raise VerificationError("the answer's nonce is malformed")
    try:
        signature = wire.b64decode(signature_b64, size=wire.SIGNATURE_SIZE)
    except ValueError:
        raise VerificationError("the answer's signature is malformed") from None
    mode = headers.get(wire.RESP_BODY_SIGNING)
    if mode is not None and mode != wire.STREAM_SIGNING_V1:
        raise VerificationError(f"unknown response body signing {mode[:40]!r}")
    h_headers = verified = None
    listed = headers.get(wire.RESP_HEADERS)
    if listed is None and request.header_names is not None:
        raise VerificationError(f"the answer ({status}) does not sign its headers")
    if listed is not None:
        # Also on an answer to a request signed the reference way: the host then says it
        # verifies signed headers; the digest is in its signature, so a relay can neither
        # add this header nor remove it without failing the answer.
        try:
            names = wire.parse_header_list(listed)
        except ValueError as exc:
            raise VerificationError(f"the answer's {wire.RESP_HEADERS}: {exc}") from None
        h_headers = wire.headers_hash(names, lines)
        wanted = set(names)
        verified = [(k, v) for k, v in lines if k.lower() in wanted]
    return BodyCheck(
        host_key,
        request,
        status,
        ts,
        response_nonce,
        signature,
        streamed=mode is not None,
        h_headers=h_headers,
        verified_headers=verified,
        on_headers_verified=on_headers_verified,
    )


class StreamVerifier:
    """Checks a body framed as signed records (u32 BE length, payload, signature) as it
    arrives. Holds at most one record; records must come in order, each signed for its
    place (seq from 1) in this answer, and an empty record must end the body."""

    def __init__(
        self,
        host_key: Ed25519PublicKey,
        session_id: str,
        request_nonce: str,
        response_nonce: str,
        *,
        max_payload: int = wire.MAX_CHUNK_PAYLOAD,
    ) -> None:
        self._key = host_key
        self._session_id = session_id
        self._request_nonce = request_nonce
        self._response_nonce = response_nonce
        self._max_payload = max_payload
        self._buffer = bytearray()
        self._seq = 0
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.done:
            if data:
                raise VerificationError("data after the final record of a signed body")
            return []
        self._buffer += data
        payloads: list[bytes] = []
        header = wire.CHUNK_HEADER.size
        while len(self._buffer) >= header:
            (length,) = wire.CHUNK_HEADER.unpack_from(self._buffer)
            if length > self._max_payload:
                raise VerificationError(f"a signed body record claims {length} bytes")
            end = header + length + wire.SIGNATURE_SIZE
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[header : header + length])
            signature = bytes(self._buffer[header + length : end])
            del self._buffer[:end]
            self._seq += 1
            message = wire.stream_chunk_message(
                self._session_id, self._request_nonce, self._response_nonce, self._seq, payload
            )
            verify_signature(self._key, signature, message, f"body record {self._seq}")
            if not payload:
                self.done = True
                if self._buffer:
                    raise VerificationError("data after the final record of a signed body")
                break
            payloads.append(payload)
        return payloads

    def finish(self) -> None:
        if not self.done:
            raise VerificationError("the signed body was cut short (no final record)")

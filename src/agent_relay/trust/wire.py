"""Byte formats of the trust layer (docs/protocol.md sections 6 and 7, plus our streamed-body
signing). Pure functions: both the host side and the client SDK build and check exactly
these strings, so one definition keeps them byte for byte the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Header names (requests: client → host; responses: host → client).
SIG_SESSION = "x-vk-sig-session"
SIG_TS = "x-vk-sig-ts"
SIG_NONCE = "x-vk-sig-nonce"
SIG_SIGNATURE = "x-vk-sig-signature"
REQUEST_SIGNATURE_FIELDS = (SIG_SESSION, SIG_TS, SIG_NONCE, SIG_SIGNATURE)
RESP_TS = "x-vk-resp-ts"
RESP_NONCE = "x-vk-resp-nonce"
RESP_SIGNATURE = "x-vk-resp-signature"
# Ours: a client that can verify a streamed body asks for it with this request header;
# the host then answers with RESP_BODY_SIGNING = STREAM_SIGNING_V1 and a framed body.
ACCEPT_STREAM_SIGNING = "x-vk-accept-signed-stream"
RESP_BODY_SIGNING = "x-vk-resp-body-signing"
STREAM_SIGNING_V1 = "chunked-v1"
# Ours: the host's clock (unix seconds) on every 401, so a client can correct skew.
HOST_TIME = "x-vk-host-time"
# Ours: signed headers. A request with SIG_HEADERS (the names it signs) has the digest of
# their canonical form in its signed string, and the host forwards only those; an answer
# to it names the headers the host signed in RESP_HEADERS, bound the same way.
SIG_HEADERS = "x-vk-sig-headers"
RESP_HEADERS = "x-vk-resp-headers"
# Ours: a client that understands RESP_HEADERS says so; the host then signs the headers
# of its answer even to a request signed the reference way, which is how our clients
# learn that a host verifies SIG_HEADERS (a reference host never sends RESP_HEADERS).
ACCEPT_SIGNED_HEADERS = "x-vk-accept-signed-headers"
MAX_SIGNED_HEADERS = 64
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
# Never signed in a request: each hop redoes the framing, and the relay or the connector
# sets or strips these on purpose (Host, the client's Cookie, the forwarding headers), so
# a signature over them could not hold; the host does not pass them on for a request
# with signed headers (but what it sets itself).
UNSIGNED_REQUEST_HEADERS = _HOP_BY_HOP | {
    "host",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-vk-relayed",
    SIG_SESSION,
    SIG_TS,
    SIG_NONCE,
    SIG_SIGNATURE,
    SIG_HEADERS,
}
# Never signed in an answer: the framing, the signature's own headers, what the relay
# replaces or adds on purpose (its isolation headers, CORS, Vary; a host's Set-Cookie
# it drops), and what a proxy on the way may set for itself (Date, Server, Via,
# Alt-Svc). A client shows none of these as verified.
UNSIGNED_RESPONSE_HEADERS = _HOP_BY_HOP | {
    "date",
    "server",
    "via",
    "alt-svc",
    "set-cookie",
    "content-security-policy",
    "x-content-type-options",
    "cross-origin-resource-policy",
    "vary",
    RESP_TS,
    RESP_NONCE,
    RESP_SIGNATURE,
    RESP_HEADERS,
    RESP_BODY_SIGNING,
    HOST_TIME,
}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")

SPAKE2_CLIENT_IDENTITY = b"vibe-kanban-browser"
SPAKE2_SERVER_IDENTITY = b"vibe-kanban-server"
_CLIENT_PROOF_LABEL = b"vk-spake2-client-proof-v2"
_SERVER_PROOF_LABEL = b"vk-spake2-server-proof-v2"

EMPTY_BODY_HASH = base64.b64encode(hashlib.sha256(b"").digest()).decode("ascii")

# A streamed, signed body is a sequence of records: u32 big-endian payload length,
# payload, 64-byte Ed25519 signature over stream_chunk_message(...). A record with an
# empty payload ends the body; a body that stops before it was truncated.
CHUNK_HEADER = struct.Struct(">I")
SIGNATURE_SIZE = 64
MAX_CHUNK_PAYLOAD = 64 * 1024


def body_hash(body: bytes) -> str:
    """``H(body)``: base64 of the SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def request_message(
    ts: int | str,
    method: str,
    path_and_query: str,
    session_id: str,
    nonce: str,
    h_body: str,
    h_headers: str | None = None,
) -> bytes:
    """``h_headers``: the digest of the signed headers (:func:`headers_hash`), for a
    request that carries SIG_HEADERS; it is then appended as one more field."""
    tail = "" if h_headers is None else f"|{h_headers}"
    return f"v1|{ts}|{method}|{path_and_query}|{session_id}|{nonce}|{h_body}{tail}".encode()


def response_message(
    resp_ts: int | str,
    status: int,
    path_and_query: str,
    session_id: str,
    request_nonce: str,
    response_nonce: str,
    h_body: str,
    h_headers: str | None = None,
) -> bytes:
    """For a streamed body ``h_body`` is the literal STREAM_SIGNING_V1: the records carry
    their own signatures, and the header signature binds status and path to them.
    ``h_headers``: the digest of the headers named in RESP_HEADERS, when it is sent."""
    tail = "" if h_headers is None else f"|{h_headers}"
    return (
        f"v1|{resp_ts}|{status}|{path_and_query}|{session_id}|{request_nonce}"
        f"|{response_nonce}|{h_body}{tail}"
    ).encode()


def signable_request_header(name: str) -> bool:
    return name not in UNSIGNED_REQUEST_HEADERS


def signable_response_header(name: str) -> bool:
    return name not in UNSIGNED_RESPONSE_HEADERS and not name.startswith("access-control-")


def header_names(lines: Iterable[tuple[str, str]], *, response: bool) -> tuple[str, ...]:
    """The names a client signs in a request (``response`` False) or the host in an
    answer: each signable name of ``lines`` once, lower case, in order, at most
    MAX_SIGNED_HEADERS."""
    keep = signable_response_header if response else signable_request_header
    names: dict[str, None] = {}
    for name, _ in lines:
        lower = name.lower()
        if keep(lower):
            names[lower] = None
    if len(names) > MAX_SIGNED_HEADERS:
        raise ValueError(f"more than {MAX_SIGNED_HEADERS} headers to sign")
    return tuple(names)


def format_header_list(names: Iterable[str]) -> str:
    return ",".join(names)


def parse_header_list(text: str) -> tuple[str, ...]:
    """SIG_HEADERS or RESP_HEADERS read back: comma-separated lower-case names, each once
    (an empty value names none). Raises ValueError on anything else."""
    if not text.strip():
        return ()
    names = tuple(part.strip() for part in text.split(","))
    if len(names) > MAX_SIGNED_HEADERS:
        raise ValueError(f"more than {MAX_SIGNED_HEADERS} signed headers")
    if len(set(names)) != len(names):
        raise ValueError("a header is named twice")
    for name in names:
        if not name or not set(name) <= _TOKEN:
            raise ValueError(f"not a lower-case header name: {name[:40]!r}")
    return names


def canonical_headers(names: Iterable[str], lines: Iterable[tuple[str, str]]) -> bytes:
    """The signed form of the headers ``names``: for each, in order, ``name:value\n``,
    where value is all the values of that name in ``lines`` (names matched in any
    case), each trimmed of spaces and tabs, joined by ", " (what a browser's
    ``Headers.get`` gives); an absent header has the empty value. Values are bytes as
    sent (latin-1 here)."""
    names = tuple(names)
    values: dict[str, list[str]] = {name: [] for name in names}
    for name, value in lines:
        found = values.get(name)
        if found is None:
            found = values.get(name.lower())
            if found is None:
                continue
        found.append(value.strip(" \t"))
    return "".join([f"{name}:{', '.join(values[name])}\n" for name in names]).encode("latin-1")


def headers_hash(names: Iterable[str], lines: Iterable[tuple[str, str]]) -> str:
    """``H(headers)``: base64 of the SHA-256 of :func:`canonical_headers`."""
    return body_hash(canonical_headers(names, lines))


def stream_chunk_message(
    session_id: str, request_nonce: str, response_nonce: str, seq: int, payload: bytes
) -> bytes:
    """Signed by the host for record ``seq`` (from 1) of a streamed body."""
    return (
        f"v1|chunk|{session_id}|{request_nonce}|{response_nonce}|{seq}|{body_hash(payload)}"
    ).encode()


def frame_message(
    session_id: str, upgrade_nonce: str, seq: int, msg_type: str, payload: bytes
) -> bytes:
    return f"v1|{session_id}|{upgrade_nonce}|{seq}|{msg_type}|{body_hash(payload)}".encode()


def refresh_message(timestamp: int | str, nonce: str, client_id: str) -> bytes:
    return f"v1|refresh|{timestamp}|{nonce}|{client_id}".encode()


def confirmation_key(shared_key: bytes) -> bytes:
    """``ck`` = HKDF-SHA256(shared key, empty salt, info "key-confirmation", 32 bytes)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"key-confirmation").derive(
        shared_key
    )


def client_proof(ck: bytes, enrollment_id: str, client_public_key: bytes) -> bytes:
    data = _CLIENT_PROOF_LABEL + uuid.UUID(enrollment_id).bytes + client_public_key
    return hmac.new(ck, data, hashlib.sha256).digest()


def server_proof(
    ck: bytes, enrollment_id: str, client_public_key: bytes, server_public_key: bytes
) -> bytes:
    data = (
        _SERVER_PROOF_LABEL + uuid.UUID(enrollment_id).bytes + client_public_key + server_public_key
    )
    return hmac.new(ck, data, hashlib.sha256).digest()


def normalize_code(code: str) -> str:
    """Clients trim and uppercase what the user typed."""
    return code.strip().upper()


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, size: int | None = None) -> bytes:
    """Strict standard base64 (padding required); ``size`` checks the decoded length.
    Raises ValueError on anything else."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, ValueError) as exc:
        raise ValueError("not base64") from exc
    if size is not None and len(data) != size:
        raise ValueError(f"expected {size} bytes, got {len(data)}")
    return data


# The application/x-www-form-urlencoded byte serializer (WHATWG URL standard, also what
# the reference's url crate produces): these bytes stay, space becomes '+', all else %XX.
_FORM_SAFE = frozenset(b"*-._0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _form_escape(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        if byte in _FORM_SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def form_urlencode(pairs: list[tuple[str, str]]) -> str:
    """Pairs re-encoded as the host does before checking a signature sent in the query
    of a WebSocket upgrade (docs/protocol.md section 6)."""
    return "&".join(f"{_form_escape(name)}={_form_escape(value)}" for name, value in pairs)


def signed_ws_path(path: str, pairs: list[tuple[str, str]]) -> str:
    """``path_and_query`` a client signs for an upgrade whose query holds ``pairs``
    besides the four signature parameters."""
    return f"{path}?{form_urlencode(pairs)}" if pairs else path

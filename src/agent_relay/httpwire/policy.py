"""The proxy rules both hops share (the relay's front and the connector): which headers
belong to one hop, whether a request has a body, how long a plain body is, and how a
request target is read as text. Pure functions over headers with lower-case names (as
the codec gives them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Headers = Iterable[tuple[bytes, bytes]]

# Headers about one hop, not the message (RFC 9110 7.6.1). The codec frames each hop's body.
HOP_BY_HOP = frozenset(
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
# Never dropped because a Connection header names them: that would change the framing.
FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host"})


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of ``name``, or None."""
    for key, value in headers:
        if key == name:
            return bytes(value)
    return None


def connection_tokens(headers: Headers) -> set[bytes]:
    """The header names a ``Connection`` header lists (they are hop-by-hop too)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def end_to_end(headers: Headers) -> list[tuple[bytes, bytes]]:
    """``headers`` without the hop-by-hop ones (named or listed in ``Connection``), and
    without Content-Length beside Transfer-Encoding (RFC 9112 6.3: TE wins)."""
    headers = list(headers)
    named = connection_tokens(headers) - FRAMING
    chunked = header(headers, b"transfer-encoding") is not None
    return [
        (name, value)
        for name, value in headers
        if name not in HOP_BY_HOP
        and name not in named
        and not (chunked and name == b"content-length")
    ]


def is_upgrade(headers: Headers) -> bool:
    headers = list(headers)
    return header(headers, b"upgrade") is not None and b"upgrade" in connection_tokens(headers)


def has_body(headers: Headers) -> bool:
    """Whether a request carries a body (RFC 9112 6.3): chunked, or a Content-Length
    above zero (``00`` is zero)."""
    length: bytes | None = None
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and length is None:
            length = value
    return length is not None and length.isdigit() and int(length) > 0


def plain_body_length(
    request_method: bytes, status: int, headers: Sequence[tuple[bytes, bytes]]
) -> int | None:
    """The length of a response body framed by Content-Length alone (RFC 9112 6.3), or
    None (no body, chunked, read to the close, or an unusable header)."""
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        return None
    length: int | None = None
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                return None
            length = int(value)
    return length


def decode_target(path: bytes, query: bytes = b"") -> str:
    """A request target as text, the one way both hops and every trust adapter read it:
    latin-1 (every byte maps; a signature over anything else simply does not verify)."""
    text = path.decode("latin-1")
    return f"{text}?{query.decode('latin-1')}" if query else text

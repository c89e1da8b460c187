"""JSON Web Tokens signed with HMAC-SHA256 (JWS compact form): the one kind the relay
takes and mints.

The relay's own codec rather than a JWT library: a library brings every public-key
algorithm and its crypto bindings (about 10 MiB resident) into a process that checks
one shared-secret MAC. Pure functions, no claims policy (``auth.py`` checks claims); the
parsing rules follow the common libraries' (unpadded base64url, JSON objects), and
``tests/unit/test_relay_hs256.py`` checks it against one differentially.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

ALGORITHM = "HS256"


class TokenFormatError(ValueError):
    """Not a well-formed token: segments, base64url or JSON."""


class SignatureMismatch(ValueError):
    """Well formed, but not signed with this key."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    try:
        raw = segment.encode("ascii")
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise TokenFormatError("invalid base64url segment") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise TokenFormatError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenFormatError(f"the {what} is not a JSON object")
    return value


def _split(token: str) -> tuple[str, str, str]:
    if not isinstance(token, str) or token.count(".") != 2:
        raise TokenFormatError("a token has three dot-separated segments")
    header, payload, signature = token.split(".")
    return header, payload, signature


def _mac(key: bytes, signing_input: str) -> bytes:
    return hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()


def unverified_header(token: str) -> dict[str, Any]:
    """The header, before anything is verified (to refuse other algorithms first)."""
    header = _json_object(_b64decode(_split(token)[0]), "header")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenFormatError("the key id must be a string")
    return header


def decode(token: str, key: bytes) -> dict[str, Any]:
    """The payload of a token whose header says HS256 and whose MAC is right.

    Raises TokenFormatError, or SignatureMismatch (compared in constant time)."""
    header_segment, payload_segment, signature_segment = _split(token)
    header = unverified_header(token)
    if header.get("alg") != ALGORITHM:
        raise SignatureMismatch("not an HS256 token")
    payload = _b64decode(payload_segment)
    signature = _b64decode(signature_segment)
    expected = _mac(key, f"{header_segment}.{payload_segment}")
    if not hmac.compare_digest(signature, expected):
        raise SignatureMismatch("the signature does not match")
    return _json_object(payload, "payload")


def encode(payload: Mapping[str, Any], key: bytes) -> str:
    """A compact HS256 token of ``payload`` (a JSON-serialisable mapping)."""
    header = json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":"))
    body = json.dumps(dict(payload), separators=(",", ":"))
    signing_input = f"{_b64encode(header.encode())}.{_b64encode(body.encode())}"
    return f"{signing_input}.{_b64encode(_mac(key, signing_input))}"

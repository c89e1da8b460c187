"""Host key binding at connect: the connector proves it holds its Ed25519 host key, so a
token of the same user cannot take over the host's tunnel by reusing its machine id.

Sans-IO: the connector calls :func:`connect_proof` for the two headers of its WebSocket
upgrade; the relay calls :func:`verify_connect_proof` and pins the key it returns to the
host on its first proven connect (relay/app.py). The signed message binds the proof to
the machine id, a timestamp and the bearer token of that connect, so a proof cannot be
reused with another token, for another host, or long after.

A connect without the headers (the reference host) is still accepted for a host that has
no pinned key; once a key is pinned, only a proof by that key is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import AgentRelayError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_HEADER = "x-agent-relay-host-key"
PROOF_HEADER = "x-agent-relay-host-proof"
# Clocks of a host and its relay may differ by this much; a proof older than it is refused.
MAX_SKEW = 300
_VERSION = "v1"
_LABEL = b"agent-relay host connect v1\n"


class HostProofError(AgentRelayError):
    """A connect's host key proof is malformed, stale or does not verify."""


@dataclass(frozen=True, slots=True)
class ProvenKey:
    public_key_b64: str  # standard base64 of the raw 32-byte key, as stored in the pin


def _message(machine_id: str, timestamp: int, token: str) -> bytes:
    token_digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    return _LABEL + f"{machine_id}\n{timestamp}\n{token_digest}".encode()


def connect_proof(
    key: Ed25519PrivateKey, *, machine_id: str, token: str, now: float
) -> dict[str, str]:
    """The headers that prove ``key`` on a connect with ``token`` for ``machine_id``."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    timestamp = int(now)
    signature = key.sign(_message(machine_id, timestamp, token))
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        KEY_HEADER: base64.b64encode(public).decode("ascii"),
        PROOF_HEADER: f"{_VERSION}.{timestamp}.{base64.b64encode(signature).decode('ascii')}",
    }


def verify_connect_proof(
    key_header: str | None,
    proof_header: str | None,
    *,
    machine_id: str,
    token: str,
    now: float,
) -> ProvenKey | None:
    """None when the connect carries no proof at all; the proven key when it verifies.
    Raises :class:`HostProofError` for anything in between (one header, bad encoding,
    unknown version, stale timestamp, wrong signature)."""
    if key_header is None and proof_header is None:
        return None
    if key_header is None or proof_header is None:
        raise HostProofError(f"a host key proof needs both {KEY_HEADER} and {PROOF_HEADER}")
    raw_key = _b64(key_header, 32, "host key")
    version, _, rest = proof_header.partition(".")
    raw_timestamp, _, raw_signature = rest.partition(".")
    if version != _VERSION:
        raise HostProofError(f"unknown host key proof version {version[:16]!r}")
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        raise HostProofError("the host key proof has no valid timestamp")
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > MAX_SKEW:
        raise HostProofError(
            f"the host key proof is {abs(now - timestamp):.0f} s off the relay's clock "
            f"(at most {MAX_SKEW} s): check the host's clock"
        )
    signature = _b64(raw_signature, 64, "host key proof signature")
    # cryptography only when a proof comes (a relay serving only reference hosts, or
    # none yet, does without its ~8 MiB).
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(
            signature, _message(machine_id, timestamp, token)
        )
    except (InvalidSignature, ValueError):  # ValueError: bytes that are no key
        raise HostProofError("the host key proof does not verify") from None
    return ProvenKey(base64.b64encode(raw_key).decode("ascii"))


def _b64(value: str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise HostProofError(f"the {what} is not base64") from None
    if len(raw) != size:
        raise HostProofError(f"the {what} must be {size} bytes, not {len(raw)}")
    return raw

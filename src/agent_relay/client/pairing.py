"""The client's half of pairing (docs/protocol.md section 7), without I/O: SPAKE2 side A against
the host's current code, then key confirmation. The code itself never leaves this
object: only the SPAKE2 message does, so a relay reading the traffic learns nothing it
can use offline, and cannot finish a pairing in our place."""

from __future__ import annotations

import hmac
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from spake2 import SPAKE2_A, SPAKEError

from ..trust import wire
from .errors import PairingError

CODE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
CODE_LENGTH = 6
SPAKE2_MESSAGE_SIZE = 33


def check_code(code: str) -> str:
    """The normalized code, or PairingError saying what is wrong with it."""
    normalized = wire.normalize_code(code)
    if len(normalized) != CODE_LENGTH or not set(normalized) <= CODE_ALPHABET:
        raise PairingError(f"a pairing code is {CODE_LENGTH} characters from A-Z and 0-9")
    return normalized


@dataclass(frozen=True)
class PairedHost:
    """What pairing yields: the host's public key and the first signing session."""

    server_public_key: bytes
    signing_session_id: str


class ClientPairing:
    """One pairing attempt. ``start_request()`` → POST spake2/start; ``finish_request()``
    with its answer → POST spake2/finish; ``check_finish()`` with that answer."""

    def __init__(
        self,
        code: str,
        client_key: Ed25519PrivateKey,
        client_id: str,
        *,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._spake = SPAKE2_A(
            check_code(code).encode("ascii"),
            idA=wire.SPAKE2_CLIENT_IDENTITY,
            idB=wire.SPAKE2_SERVER_IDENTITY,
            entropy_f=entropy,
        )
        self._client_key = client_key
        self.client_id = client_id
        self.client_public_key = client_key.public_key().public_bytes_raw()
        self.client_message: bytes = self._spake.start()
        self._ck: bytes | None = None
        self._enrollment_id: str | None = None

    def start_request(self) -> dict[str, Any]:
        # No enrollment_code: the host runs against its current code (docs/protocol.md section 7).
        return {"client_message_b64": wire.b64encode(self.client_message)}

    def finish_request(
        self,
        start_answer: dict[str, Any],
        *,
        client_name: str,
        client_browser: str = "agent-relay",
        client_os: str = "",
        client_device: str = "",
    ) -> dict[str, Any]:
        enrollment_id = _uuid_field(start_answer, "enrollment_id")
        server_message = _b64_field(start_answer, "server_message_b64", SPAKE2_MESSAGE_SIZE)
        try:
            shared_key = self._spake.finish(server_message)
        except (SPAKEError, ValueError) as exc:
            raise PairingError(f"the host's SPAKE2 message is invalid: {exc}") from None
        self._ck = wire.confirmation_key(shared_key)
        self._enrollment_id = enrollment_id
        proof = wire.client_proof(self._ck, enrollment_id, self.client_public_key)
        return {
            "enrollment_id": enrollment_id,
            "client_id": self.client_id,
            "client_name": client_name,
            "client_browser": client_browser,
            "client_os": client_os,
            "client_device": client_device,
            "public_key_b64": wire.b64encode(self.client_public_key),
            "client_proof_b64": wire.b64encode(proof),
        }

    def check_finish(self, finish_answer: dict[str, Any]) -> PairedHost:
        """The host must prove it derived the same key, i.e. knew the code."""
        if self._ck is None or self._enrollment_id is None:
            raise PairingError("finish_request() must come first")
        server_key = _b64_field(finish_answer, "server_public_key_b64", 32)
        proof = _b64_field(finish_answer, "server_proof_b64", 32)
        expected = wire.server_proof(
            self._ck, self._enrollment_id, self.client_public_key, server_key
        )
        if not hmac.compare_digest(proof, expected):
            raise PairingError(
                "the host's proof is wrong: the code did not match, or something between "
                "you and the host tampered with the pairing"
            )
        try:
            Ed25519PublicKey.from_public_bytes(server_key)
        except ValueError:
            raise PairingError("the host's public key is not an Ed25519 key") from None
        session = _uuid_field(finish_answer, "signing_session_id")
        return PairedHost(server_public_key=server_key, signing_session_id=session)


def _uuid_field(answer: dict[str, Any], name: str) -> str:
    value = answer.get(name)
    try:
        return str(uuid.UUID(str(value))) if isinstance(value, str) else _bad(name)
    except ValueError:
        return _bad(name)


def _b64_field(answer: dict[str, Any], name: str, size: int) -> bytes:
    value = answer.get(name)
    if not isinstance(value, str):
        _bad(name)
    try:
        return wire.b64decode(str(value), size=size)
    except ValueError as exc:
        raise PairingError(f"the host's answer has a bad {name}: {exc}") from None


def _bad(name: str) -> str:
    raise PairingError(f"the host's answer lacks a valid {name}")

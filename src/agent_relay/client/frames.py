"""Signed WebSocket frames (docs/protocol.md section 6), without I/O. After a signed upgrade
every message both ways is a JSON envelope signed over the upgrade's session and nonce
and a per-direction sequence number that must rise by exactly one: so the relay can
neither forge, alter, drop, reorder nor replay a frame without the peer noticing."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..trust import wire
from .errors import VerificationError
from .signing import verify_signature

MSG_TYPES = frozenset({"text", "binary", "ping", "pong", "close"})
MAX_ENVELOPE_SIZE = 16 * 1024 * 1024 + 4096  # the host accepts envelopes this large
_CLOSE_CODE = struct.Struct(">H")


@dataclass(frozen=True)
class Frame:
    msg_type: str
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    def close_code(self) -> tuple[int, str]:
        """A close payload: big-endian u16 code, then a UTF-8 reason."""
        if len(self.payload) < 2:
            return 1005, ""
        (code,) = _CLOSE_CODE.unpack_from(self.payload)
        return code, self.payload[2:].decode("utf-8", "replace")


def close_payload(code: int, reason: str = "") -> bytes:
    return _CLOSE_CODE.pack(code) + reason.encode()


class FrameSigner:
    """Our direction: each call signs the next frame."""

    def __init__(self, key: Ed25519PrivateKey, session_id: str, upgrade_nonce: str) -> None:
        self._key = key
        self._session_id = session_id
        self._nonce = upgrade_nonce
        self._seq = 0

    def sign(self, msg_type: str, payload: bytes) -> str:
        if msg_type not in MSG_TYPES:
            raise ValueError(f"unknown frame type {msg_type!r}")
        self._seq += 1
        message = wire.frame_message(self._session_id, self._nonce, self._seq, msg_type, payload)
        return json.dumps(
            {
                "version": 1,
                "seq": self._seq,
                "msg_type": msg_type,
                "payload_b64": wire.b64encode(payload),
                "signature_b64": wire.b64encode(self._key.sign(message)),
            },
            separators=(",", ":"),
        )


class FrameVerifier:
    """The host's direction: checks each envelope as it arrives, in order."""

    def __init__(self, host_key: Ed25519PublicKey, session_id: str, upgrade_nonce: str) -> None:
        self._key = host_key
        self._session_id = session_id
        self._nonce = upgrade_nonce
        self._seq = 0

    def open(self, message: str | bytes) -> Frame:
        if len(message) > MAX_ENVELOPE_SIZE:
            raise VerificationError("a WebSocket frame envelope is too large")
        try:
            envelope: Any = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            raise VerificationError("a WebSocket frame is not a signed envelope") from None
        if not isinstance(envelope, dict):
            raise VerificationError("a WebSocket frame is not a signed envelope")
        version = envelope.get("version")
        seq = envelope.get("seq")
        msg_type = envelope.get("msg_type")
        payload_b64 = envelope.get("payload_b64", "")
        signature_b64 = envelope.get("signature_b64")
        if version != 1 or type(version) is not int:
            raise VerificationError(f"unknown frame envelope version {str(version)[:20]!r}")
        if type(seq) is not int or msg_type not in MSG_TYPES:
            raise VerificationError("a WebSocket frame envelope is malformed")
        if not isinstance(payload_b64, str) or not isinstance(signature_b64, str):
            raise VerificationError("a WebSocket frame envelope is malformed")
        if seq != self._seq + 1:
            raise VerificationError(
                f"WebSocket frame {seq} arrived where {self._seq + 1} was due "
                "(dropped, reordered or replayed)"
            )
        try:
            payload = wire.b64decode(payload_b64)
            signature = wire.b64decode(signature_b64, size=wire.SIGNATURE_SIZE)
        except ValueError:
            raise VerificationError("a WebSocket frame envelope is malformed") from None
        message_bytes = wire.frame_message(self._session_id, self._nonce, seq, msg_type, payload)
        verify_signature(self._key, signature, message_bytes, f"WebSocket frame {seq}")
        self._seq = seq
        return Frame(msg_type, payload)

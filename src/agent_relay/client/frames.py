"""Signed WebSocket frames (wire.md section 6), without I/O. After a signed upgrade
every message both ways is a JSON envelope signed over the upgrade's session and nonce
and a per-direction sequence number that must rise by exactly one: so the relay can
neither forge, alter, drop, reorder nor replay a frame without the peer noticing."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..trust import envelope, wire
from ..trust.envelope import MSG_TYPES, close_payload, parse_close_payload
from .errors import VerificationError
from .signing import verify_signature

MAX_ENVELOPE_SIZE = 16 * 1024 * 1024 + 4096  # the host accepts envelopes this large
__all__ = ["MSG_TYPES", "Frame", "FrameSigner", "FrameVerifier", "close_payload"]
_CLIENT_WORDS = {
    "not_json": "a WebSocket frame is not a signed envelope",
    "version": "unknown frame envelope version",
    "fields": "a WebSocket frame envelope is malformed",
    "base64": "a WebSocket frame envelope is malformed",
}


@dataclass(frozen=True)
class Frame:
    msg_type: str
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    def close_code(self) -> tuple[int, str]:
        """A close payload: big-endian u16 code, then a UTF-8 reason."""
        return parse_close_payload(self.payload)


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
        return envelope.encode(self._seq, msg_type, payload, self._key.sign(message))


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
            frame = envelope.decode(message, payload_required=False)
        except envelope.EnvelopeError as exc:
            raise VerificationError(_CLIENT_WORDS[exc.problem]) from None
        seq, msg_type, payload, signature = (
            frame.seq,
            frame.msg_type,
            frame.payload,
            frame.signature,
        )
        if seq != self._seq + 1:
            raise VerificationError(
                f"WebSocket frame {seq} arrived where {self._seq + 1} was due "
                "(dropped, reordered or replayed)"
            )
        message_bytes = wire.frame_message(self._session_id, self._nonce, seq, msg_type, payload)
        verify_signature(self._key, signature, message_bytes, f"WebSocket frame {seq}")
        self._seq = seq
        return Frame(msg_type, payload)

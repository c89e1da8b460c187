"""Signed WebSocket frames (sans-IO): after a signed upgrade every message either way is
a JSON envelope ``{"version":1,"seq":n,"msg_type":…,"payload_b64":…,"signature_b64":…}``
signed over ``wire.frame_message``; ``seq`` counts per direction from 1, exactly +1."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import envelope, wire
from .envelope import MSG_TYPES, close_payload, parse_close_payload
from .keys import verifies

__all__ = ["MSG_TYPES", "POLICY_VIOLATION", "FrameCodec", "FrameError", "close_payload"]
__all__ += ["parse_close_payload"]
# WebSocket close code for a frame that fails its check.
POLICY_VIOLATION = 1008


_HOST_WORDS = {
    "not_json": "a signed frame must be a JSON envelope",
    "version": "unknown envelope version",
    "fields": "bad seq, msg_type, payload_b64 or signature_b64",
    "base64": "bad base64 in the envelope",
}


class FrameError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FrameCodec:
    """One signed WebSocket, host side: encodes our frames with the host key and decodes
    the client's, checked against its key and sequence."""

    def __init__(
        self,
        session_id: str,
        upgrade_nonce: str,
        host_key: Ed25519PrivateKey,
        client_key: Ed25519PublicKey,
        *,
        max_message: int = 16 * 1024 * 1024,
    ) -> None:
        self.session_id = session_id
        self.upgrade_nonce = upgrade_nonce
        self._host_key = host_key
        self._client_key = client_key
        self.max_message = max_message
        self.sent = 0
        self.received = 0

    def encode(self, msg_type: str, payload: bytes) -> str:
        if msg_type not in MSG_TYPES:
            raise ValueError(f"unknown msg_type {msg_type!r}")
        self.sent += 1
        message = wire.frame_message(
            self.session_id, self.upgrade_nonce, self.sent, msg_type, payload
        )
        return envelope.encode(self.sent, msg_type, payload, self._host_key.sign(message))

    def decode(self, message: str | bytes) -> tuple[str, bytes]:
        """``(msg_type, payload)`` of the client's next frame; FrameError if it is not."""
        if len(message) > self.max_message:
            raise FrameError("frame_too_large", "signed frame too large")
        try:
            frame = envelope.decode(message)
        except envelope.EnvelopeError as exc:
            raise FrameError("bad_frame", _HOST_WORDS[exc.problem]) from None
        seq, msg_type, payload, signature = (
            frame.seq,
            frame.msg_type,
            frame.payload,
            frame.signature,
        )
        if seq != self.received + 1:
            raise FrameError("bad_sequence", f"expected frame {self.received + 1}, got {seq}")
        signed = wire.frame_message(self.session_id, self.upgrade_nonce, seq, msg_type, payload)
        if not verifies(self._client_key, signature, signed):
            raise FrameError("bad_signature", "the frame signature does not verify")
        if msg_type == "text":
            try:
                payload.decode()
            except UnicodeDecodeError:
                raise FrameError("bad_frame", "a text frame must be UTF-8") from None
        self.received = seq
        return msg_type, payload

"""Signed WebSocket frames (sans-IO): after a signed upgrade every message either way is
a JSON envelope ``{"version":1,"seq":n,"msg_type":…,"payload_b64":…,"signature_b64":…}``
signed over ``wire.frame_message``; ``seq`` counts per direction from 1, exactly +1."""

from __future__ import annotations

import json
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import wire
from .keys import verifies

MSG_TYPES = frozenset({"text", "binary", "ping", "pong", "close"})
# WebSocket close code for a frame that fails its check.
POLICY_VIOLATION = 1008


class FrameError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack(">H", code) + reason.encode()[:123]


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return 1005, ""
    return struct.unpack(">H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


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
        return json.dumps(
            {
                "version": 1,
                "seq": self.sent,
                "msg_type": msg_type,
                "payload_b64": wire.b64encode(payload),
                "signature_b64": wire.b64encode(self._host_key.sign(message)),
            },
            separators=(",", ":"),
        )

    def decode(self, message: str | bytes) -> tuple[str, bytes]:
        """``(msg_type, payload)`` of the client's next frame; FrameError if it is not."""
        if len(message) > self.max_message:
            raise FrameError("frame_too_large", "signed frame too large")
        try:
            envelope = json.loads(message)
        except (ValueError, RecursionError):
            raise FrameError("bad_frame", "a signed frame must be a JSON envelope") from None
        if not isinstance(envelope, dict) or envelope.get("version") != 1:
            raise FrameError("bad_frame", "unknown envelope version")
        seq = envelope.get("seq")
        msg_type = envelope.get("msg_type")
        payload_b64 = envelope.get("payload_b64")
        signature_b64 = envelope.get("signature_b64")
        if type(seq) is not int or msg_type not in MSG_TYPES:
            raise FrameError("bad_frame", "bad seq or msg_type")
        if not isinstance(payload_b64, str) or not isinstance(signature_b64, str):
            raise FrameError("bad_frame", "payload_b64 and signature_b64 must be strings")
        if seq != self.received + 1:
            raise FrameError("bad_sequence", f"expected frame {self.received + 1}, got {seq}")
        try:
            payload = wire.b64decode(payload_b64)
            signature = wire.b64decode(signature_b64, size=wire.SIGNATURE_SIZE)
        except ValueError:
            raise FrameError("bad_frame", "bad base64 in the envelope") from None
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

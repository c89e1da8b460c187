"""The signed WebSocket frame envelope, both directions' shared codec (sans-IO):
``{"version":1,"seq":N,"msg_type":…,"payload_b64":…,"signature_b64":…}``. What a side
does with a bad one (and in which words) is its own; the sequence and the signature are
checked by the side that holds the keys."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from . import wire

MSG_TYPES = frozenset({"text", "binary", "ping", "pong", "close"})
_CLOSE_CODE = struct.Struct(">H")


class EnvelopeError(ValueError):
    """``problem``: ``not_json``, ``version``, ``fields`` or ``base64``."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Envelope:
    seq: int
    msg_type: str
    payload: bytes
    signature: bytes


def encode(seq: int, msg_type: str, payload: bytes, signature: bytes) -> str:
    return json.dumps(
        {
            "version": 1,
            "seq": seq,
            "msg_type": msg_type,
            "payload_b64": wire.b64encode(payload),
            "signature_b64": wire.b64encode(signature),
        },
        separators=(",", ":"),
    )


def decode(message: str | bytes, *, payload_required: bool = True) -> Envelope:
    try:
        envelope = json.loads(message)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise EnvelopeError("not_json") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("not_json")
    version = envelope.get("version")
    if version != 1 or type(version) is not int:
        raise EnvelopeError("version")
    seq = envelope.get("seq")
    msg_type = envelope.get("msg_type")
    payload_b64 = envelope.get("payload_b64", None if payload_required else "")
    signature_b64 = envelope.get("signature_b64")
    if type(seq) is not int or msg_type not in MSG_TYPES:
        raise EnvelopeError("fields")
    if not isinstance(payload_b64, str) or not isinstance(signature_b64, str):
        raise EnvelopeError("fields")
    try:
        payload = wire.b64decode(payload_b64)
        signature = wire.b64decode(signature_b64, size=wire.SIGNATURE_SIZE)
    except ValueError:
        raise EnvelopeError("base64") from None
    return Envelope(seq, msg_type, payload, signature)


def close_payload(code: int, reason: str = "") -> bytes:
    """A close payload: big-endian u16 code, then a UTF-8 reason (at most 123 bytes)."""
    return _CLOSE_CODE.pack(code) + reason.encode()[:123]


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return 1005, ""
    (code,) = _CLOSE_CODE.unpack_from(payload)
    return code, payload[2:].decode("utf-8", "replace")

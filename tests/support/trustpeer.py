"""A paired client written in the tests from wire.py and the spake2 package (side A):
what the host side is checked against, independent of agent_relay.client."""

from __future__ import annotations

import json
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from spake2 import SPAKE2_A

from agent_relay.trust import wire
from agent_relay.trust.keys import public_bytes, verifies

PREFIX = "/api/relay-auth/server/"


class SignatureMismatch(AssertionError):
    pass


@dataclass
class Pairing:
    """One SPAKE2 run, side A."""

    code: str
    spake: SPAKE2_A = field(init=False)
    message: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.spake = SPAKE2_A(
            wire.normalize_code(self.code).encode(),
            idA=wire.SPAKE2_CLIENT_IDENTITY,
            idB=wire.SPAKE2_SERVER_IDENTITY,
        )
        self.message = self.spake.start()

    def start_body(self, *, send_code: bool = False) -> dict[str, Any]:
        body = {"client_message_b64": wire.b64encode(self.message)}
        if send_code:
            body["enrollment_code"] = self.code
        return body


@dataclass
class Peer:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    session_id: str = ""
    host_key: Ed25519PublicKey | None = None
    ck: bytes = b""
    enrollment_id: str = ""

    @property
    def public_b64(self) -> str:
        return wire.b64encode(public_bytes(self.key))

    def finish_body(self, pairing: Pairing, start_answer: dict[str, Any]) -> dict[str, Any]:
        server_message = wire.b64decode(start_answer["server_message_b64"], size=33)
        shared = pairing.spake.finish(server_message)
        self.ck = wire.confirmation_key(shared)
        self.enrollment_id = start_answer["enrollment_id"]
        proof = wire.client_proof(self.ck, self.enrollment_id, public_bytes(self.key))
        return {
            "enrollment_id": self.enrollment_id,
            "client_id": self.client_id,
            "client_name": "test peer",
            "client_browser": "pytest",
            "client_os": "linux",
            "client_device": "desktop",
            "public_key_b64": self.public_b64,
            "client_proof_b64": wire.b64encode(proof),
        }

    def accept_finish(self, answer: dict[str, Any]) -> None:
        host_public = wire.b64decode(answer["server_public_key_b64"], size=32)
        expected = wire.server_proof(
            self.ck, self.enrollment_id, public_bytes(self.key), host_public
        )
        if wire.b64decode(answer["server_proof_b64"]) != expected:
            raise SignatureMismatch("server proof")
        self.host_key = Ed25519PublicKey.from_public_bytes(host_public)
        self.session_id = answer["signing_session_id"]

    def refresh_body(self, now: int) -> dict[str, Any]:
        nonce = str(uuid.uuid4())
        signature = self.key.sign(wire.refresh_message(now, nonce, self.client_id))
        return {
            "client_id": self.client_id,
            "timestamp": now,
            "nonce": nonce,
            "signature_b64": wire.b64encode(signature),
        }

    def sign(
        self, method: str, target: str, body: bytes, now: int, *, nonce: str | None = None
    ) -> dict[str, str]:
        nonce = nonce or str(uuid.uuid4())
        message = wire.request_message(
            now, method, target, self.session_id, nonce, wire.body_hash(body)
        )
        return {
            wire.SIG_SESSION: self.session_id,
            wire.SIG_TS: str(now),
            wire.SIG_NONCE: nonce,
            wire.SIG_SIGNATURE: wire.b64encode(self.key.sign(message)),
        }

    def signed_query(self, path: str, now: int, **params: str) -> tuple[str, str]:
        """A WebSocket target with the signature in the query; (target, nonce)."""
        canonical = wire.signed_ws_path(path, list(params.items()))
        headers = self.sign("GET", canonical, b"", now)
        query = urlencode({**params, **headers})
        return f"{path}?{query}", headers[wire.SIG_NONCE]

    def check_response(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        target: str,
        request_nonce: str,
    ) -> bytes:
        """The verified body (records unframed when streamed); SignatureMismatch if not."""
        assert self.host_key is not None
        streamed = headers.get(wire.RESP_BODY_SIGNING) == wire.STREAM_SIGNING_V1
        h_body = wire.STREAM_SIGNING_V1 if streamed else wire.body_hash(body)
        message = wire.response_message(
            headers[wire.RESP_TS],
            status,
            target,
            self.session_id,
            request_nonce,
            headers[wire.RESP_NONCE],
            h_body,
        )
        signature = wire.b64decode(headers[wire.RESP_SIGNATURE], size=64)
        if not verifies(self.host_key, signature, message):
            raise SignatureMismatch("response head")
        if not streamed:
            return body
        return b"".join(
            self.records(body, request_nonce, headers[wire.RESP_NONCE], require_end=True)
        )

    def records(
        self, data: bytes, request_nonce: str, response_nonce: str, *, require_end: bool
    ) -> list[bytes]:
        assert self.host_key is not None
        out: list[bytes] = []
        seq = 0
        offset = 0
        ended = False
        while offset < len(data):
            if len(data) - offset < 4:
                break  # a record cut off in its header
            (size,) = struct.unpack_from(">I", data, offset)
            if len(data) - offset < 4 + size + 64:
                break  # cut off in its payload or signature
            payload = data[offset + 4 : offset + 4 + size]
            signature = data[offset + 4 + size : offset + 4 + size + 64]
            offset += 4 + size + 64
            seq += 1
            message = wire.stream_chunk_message(
                self.session_id, request_nonce, response_nonce, seq, payload
            )
            if len(signature) != 64 or not verifies(self.host_key, signature, message):
                raise SignatureMismatch(f"record {seq}")
            if not payload:
                ended = True
                break
            out.append(payload)
        if require_end and not ended:
            raise SignatureMismatch("truncated stream")
        return out

    # WebSocket envelopes.
    def frame(self, seq: int, upgrade_nonce: str, msg_type: str, payload: bytes) -> str:
        message = wire.frame_message(self.session_id, upgrade_nonce, seq, msg_type, payload)
        return json.dumps(
            {
                "version": 1,
                "seq": seq,
                "msg_type": msg_type,
                "payload_b64": wire.b64encode(payload),
                "signature_b64": wire.b64encode(self.key.sign(message)),
            }
        )

    def open_frame(self, seq: int, upgrade_nonce: str, text: str | bytes) -> tuple[str, bytes]:
        assert self.host_key is not None
        envelope = json.loads(text)
        if envelope["seq"] != seq:
            raise SignatureMismatch(f"frame seq {envelope['seq']} != {seq}")
        payload = wire.b64decode(envelope["payload_b64"])
        message = wire.frame_message(
            self.session_id, upgrade_nonce, seq, envelope["msg_type"], payload
        )
        if not verifies(self.host_key, wire.b64decode(envelope["signature_b64"]), message):
            raise SignatureMismatch(f"frame {seq}")
        return envelope["msg_type"], payload

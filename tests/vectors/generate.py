"""Test vectors shared by the Python implementation and the browser SDK, made FROM the
Python implementation (agent_relay.trust.wire, the host's StreamSigner and FrameCodec,
the `spake2` package). ``python -m tests.vectors.generate`` writes them; tests read them:
tests/vectors/test_vectors.py (Python: the files are what this module builds, and the
Python client accepts the good cases and refuses the bad ones) and
clients/browser/test/vectors.test.mjs (the SDK builds the same bytes and makes the same
decisions). Ed25519 signatures are deterministic, so fixed seeds give fixed vectors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from spake2 import SPAKE2_A, SPAKE2_B

from agent_relay.trust import wire
from agent_relay.trust.frames import FrameCodec, close_payload
from agent_relay.trust.signing import StreamSigner

HERE = Path(__file__).parent
HOST_SEED = hashlib.sha256(b"agent-relay vectors: host").digest()
CLIENT_SEED = hashlib.sha256(b"agent-relay vectors: client").digest()
SESSION = "6f2d8a4e-5c1b-4e8f-9a3d-2b7c1e0f4a59"
REQUEST_NONCE = "1b9e7c2a-3f4d-4a5b-8c6d-7e8f9a0b1c2d"
RESPONSE_NONCE = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ENROLLMENT_ID = "c4f1a2b3-d5e6-4f70-8a9b-0c1d2e3f4a5b"


def host_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(HOST_SEED)


def client_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(CLIENT_SEED)


def keys_info() -> dict[str, str]:
    return {
        "host_seed_hex": HOST_SEED.hex(),
        "host_public_b64": wire.b64encode(host_key().public_key().public_bytes_raw()),
        "client_seed_hex": CLIENT_SEED.hex(),
        "client_public_b64": wire.b64encode(client_key().public_key().public_bytes_raw()),
        "session_id": SESSION,
        "request_nonce": REQUEST_NONCE,
        "response_nonce": RESPONSE_NONCE,
        "client_id": CLIENT_ID,
    }


def canonical() -> dict[str, Any]:
    """The signed strings, and the client's signatures over them (fixed seed)."""
    requests = []
    for ts, method, path, body in [
        (1767225600, "GET", "/api/workspaces", b""),
        (1767225601, "POST", "/api/workspaces", b'{"name": "from the browser"}'),
        (1767225602, "PUT", "/api/x?b=2&a=1&q=%C3%A9t%C3%A9", "été ✓".encode()),
        (1767225603, "DELETE", "/api/relay-auth/server/clients/" + CLIENT_ID, b""),
        (1767225604, "GET", "/api/blob?offset=0&length=1048576", bytes(range(256))),
    ]:
        message = wire.request_message(
            ts, method, path, SESSION, REQUEST_NONCE, wire.body_hash(body)
        )
        requests.append(
            {
                "ts": ts,
                "method": method,
                "path_and_query": path,
                "body_b64": wire.b64encode(body),
                "h_body": wire.body_hash(body),
                "message": message.decode(),
                "signature_b64": wire.b64encode(client_key().sign(message)),
            }
        )
    responses = []
    for ts, status, path, body in [
        (1767225600, 200, "/api/workspaces", b'[{"id":"w1","name":"demo"}]'),
        (1767225601, 201, "/api/workspaces", b'{"id":"w2"}'),
        (1767225602, 404, "/api/nothing", b'{"error":"not found"}'),
        (1767225603, 204, "/api/x", b""),
    ]:
        message = wire.response_message(
            ts, status, path, SESSION, REQUEST_NONCE, RESPONSE_NONCE, wire.body_hash(body)
        )
        responses.append(
            {
                "ts": ts,
                "status": status,
                "path_and_query": path,
                "body_b64": wire.b64encode(body),
                "message": message.decode(),
                "headers": {
                    wire.RESP_TS: str(ts),
                    wire.RESP_NONCE: RESPONSE_NONCE,
                    wire.RESP_SIGNATURE: wire.b64encode(host_key().sign(message)),
                },
            }
        )
    refresh = wire.refresh_message(1767225600, REQUEST_NONCE, CLIENT_ID)
    form_cases = [
        ("/api/terminal", []),
        ("/api/terminal", [("cols", "80"), ("rows", "24")]),
        ("/ws", [("q", "a b"), ("x", "é/?&=+~*-._!'()")]),
        ("/ws", [("empty", ""), ("", "v"), ("dup", "1"), ("dup", "2")]),
    ]
    return {
        "keys": keys_info(),
        "requests": requests,
        "responses": responses,
        "refresh": {
            "timestamp": 1767225600,
            "nonce": REQUEST_NONCE,
            "client_id": CLIENT_ID,
            "message": refresh.decode(),
            "signature_b64": wire.b64encode(client_key().sign(refresh)),
        },
        "ws_paths": [
            {
                "path": path,
                "pairs": [list(p) for p in pairs],
                "signed": wire.signed_ws_path(path, pairs),
            }
            for path, pairs in form_cases
        ],
        "empty_body_hash": wire.EMPTY_BODY_HASH,
    }


def fixed(entropy: bytes) -> Any:
    def entropy_f(count: int) -> bytes:
        assert count == len(entropy), count
        return entropy

    return entropy_f


def spake2() -> dict[str, Any]:
    """Side A's message for fixed entropy, the host's side B, the shared key, and the
    key-confirmation values the pairing exchanges."""
    cases = []
    for i, code in enumerate(["AB12CD", "000000", "ZZZZZZ", "K7QX2M"]):
        entropy_a = hashlib.sha512(b"A" + bytes([i])).digest()
        entropy_b = hashlib.sha512(b"B" + bytes([i])).digest()
        a = SPAKE2_A(
            code.encode(),
            idA=wire.SPAKE2_CLIENT_IDENTITY,
            idB=wire.SPAKE2_SERVER_IDENTITY,
            entropy_f=fixed(entropy_a),
        )
        b = SPAKE2_B(
            code.encode(),
            idA=wire.SPAKE2_CLIENT_IDENTITY,
            idB=wire.SPAKE2_SERVER_IDENTITY,
            entropy_f=fixed(entropy_b),
        )
        message_a, message_b = a.start(), b.start()
        key = a.finish(message_b)
        assert key == b.finish(message_a)
        client_public = client_key().public_key().public_bytes_raw()
        server_public = host_key().public_key().public_bytes_raw()
        ck = wire.confirmation_key(key)
        cases.append(
            {
                "code": code,
                "entropy_a_hex": entropy_a.hex(),
                "message_a_hex": message_a.hex(),
                "message_b_hex": message_b.hex(),
                "key_hex": key.hex(),
                "ck_hex": ck.hex(),
                "enrollment_id": ENROLLMENT_ID,
                "client_public_b64": wire.b64encode(client_public),
                "server_public_b64": wire.b64encode(server_public),
                "client_proof_b64": wire.b64encode(
                    wire.client_proof(ck, ENROLLMENT_ID, client_public)
                ),
                "server_proof_b64": wire.b64encode(
                    wire.server_proof(ck, ENROLLMENT_ID, client_public, server_public)
                ),
            }
        )
    return {"identities": ["vibe-kanban-browser", "vibe-kanban-server"], "cases": cases}


def _python_verified_prefix(body: bytes) -> tuple[int, bool]:
    """How many payload bytes the Python client hands out before it refuses ``body``
    (fed in 1000-byte reads), and whether it accepts the whole."""
    from agent_relay.client.errors import VerificationError
    from agent_relay.client.signing import StreamVerifier

    verifier = StreamVerifier(host_key().public_key(), SESSION, REQUEST_NONCE, RESPONSE_NONCE)
    out = 0
    try:
        for at in range(0, len(body), 1000):
            out += sum(len(p) for p in verifier.feed(body[at : at + 1000]))
        verifier.finish()
    except VerificationError:
        return out, False
    return out, True


def chunked() -> dict[str, Any]:
    """A chunked-v1 body as the host's StreamSigner writes it, and altered copies the
    client must refuse. An altered body is given as the good body's record indices in
    order, then at most one flipped byte (offset in the result), to keep the file small;
    ``verified_prefix`` is how many payload bytes the Python client hands out first."""
    writes = [b"data: event 0\n\n", b"x" * 65600, bytes(range(256)) * 3]
    signer = StreamSigner(host_key(), SESSION, REQUEST_NONCE, RESPONSE_NONCE)
    records = [signer.feed(w) for w in writes] + [signer.end()]
    # The 65600-byte write became two records; split it so each record is one entry.
    split: list[bytes] = []
    for blob in records:
        while blob:
            (length,) = wire.CHUNK_HEADER.unpack_from(blob)
            size = wire.CHUNK_HEADER.size + length + wire.SIGNATURE_SIZE
            split.append(blob[:size])
            blob = blob[size:]
    body = b"".join(split)
    payload = b"".join(writes)
    head = wire.response_message(
        1767225600,
        200,
        "/api/events",
        SESSION,
        REQUEST_NONCE,
        RESPONSE_NONCE,
        wire.STREAM_SIGNING_V1,
    )
    n = len(split)
    first = len(split[0])
    third = first + len(split[1])
    every = list(range(n))
    cases: list[tuple[str, list[int], int | None]] = [
        ("payload byte changed in record 1", every, 4 + 3),
        ("signature byte changed in record 1", every, first - 1),
        ("payload byte changed in record 3", every, third + 10),
        ("length changed in record 2", every, first + 3),
        ("records 2 and 3 swapped", [0, 2, 1, *range(3, n)], None),
        ("cut before the final record", every[:-1], None),
        ("final record dropped, record 1 repeated", [*every[:-1], 0], None),
        ("data after the final record", [*every, 0], None),
        ("the final record alone", [n - 1], None),
    ]
    bad = []
    for name, order, flip in cases:
        data = bytearray(b"".join(split[i] for i in order))
        if flip is not None:
            data[flip] ^= 0x01
        prefix, accepted = _python_verified_prefix(bytes(data))
        assert not accepted, name
        bad.append({"name": name, "records": order, "flip": flip, "verified_prefix": prefix})
    good_prefix, accepted = _python_verified_prefix(body)
    assert accepted
    assert good_prefix == len(payload)
    return {
        "keys": keys_info(),
        "status": 200,
        "path_and_query": "/api/events",
        "resp_ts": 1767225600,
        "head_message": head.decode(),
        "head_signature_b64": wire.b64encode(host_key().sign(head)),
        "payload_sha256_hex": hashlib.sha256(payload).hexdigest(),
        "payload_size": len(payload),
        "records_b64": [wire.b64encode(r) for r in split],
        "bad": bad,
    }


def frames() -> dict[str, Any]:
    """Envelopes both ways: the host's (FrameCodec with the host key) for the client to
    open, and the client's, signed with the fixed client seed, as the host expects."""
    upgrade_nonce = REQUEST_NONCE
    host = FrameCodec(SESSION, upgrade_nonce, host_key(), client_key().public_key())
    host_frames = [
        ("text", b"echo:hello"),
        ("binary", bytes([0, 1, 2, 255])),
        ("ping", b"p"),
        ("text", "été".encode()),
        ("close", close_payload(1008, "client revoked")),
    ]
    from_host = [
        {"msg_type": t, "payload_b64": wire.b64encode(p), "envelope": host.encode(t, p)}
        for t, p in host_frames
    ]
    client = FrameCodec(SESSION, upgrade_nonce, client_key(), host_key().public_key())
    client_frames = [
        ("text", b"hello"),
        ("binary", b"\x00\xff"),
        ("pong", b"p"),
        ("close", close_payload(1000, "bye")),
    ]
    from_client = [
        {"msg_type": t, "payload_b64": wire.b64encode(p), "envelope": client.encode(t, p)}
        for t, p in client_frames
    ]
    return {
        "keys": keys_info(),
        "upgrade_nonce": upgrade_nonce,
        "from_host": from_host,
        "from_client": from_client,
    }


def headers() -> dict[str, Any]:
    """Signed headers: the canonical form of a header list (what a browser's Headers.get
    gives for each name), which names each side signs, and a request and an answer
    signed with their headers, plus altered answers the client must refuse."""
    canonical_cases = [
        (["content-type"], [["content-type", "application/json"]]),
        (["x-a", "content-type"], [["Content-Type", " text/plain "], ["x-a", "1"], ["X-A", "2"]]),
        (["range", "x-absent"], [["range", "bytes=0-9"]]),
        (["x-latin"], [["x-latin", "caf\u00e9"]]),
        ([], [["x-ignored", "1"]]),
    ]
    names = [
        "content-type", "authorization", "range", "x-custom", "accept-encoding", "cookie",
        "host", "content-length", "transfer-encoding", "connection", "x-forwarded-for",
        "forwarded", "x-vk-relayed", "x-vk-sig-session", "x-vk-sig-headers", "location",
        "set-cookie", "content-disposition", "content-security-policy", "vary", "date",
        "access-control-allow-origin", "x-vk-resp-headers", "x-vk-accept-signed-stream",
    ]  # fmt: skip
    request_lines = [
        ("accept-encoding", "identity"),
        ("authorization", "Bearer t"),
        ("content-type", "application/json"),
        ("x-vk-accept-signed-stream", "1"),
    ]
    request_names = wire.header_names(request_lines, response=False)
    h_request = wire.headers_hash(request_names, request_lines)
    body = b'{"name": "signed headers"}'
    request_message = wire.request_message(
        1767225610, "POST", "/api/x", SESSION, REQUEST_NONCE, wire.body_hash(body), h_request
    )
    answer_lines = [
        ("content-type", "application/json"),
        ("content-disposition", 'attachment; filename="a.json"'),
        ("x-app", "1"),
        ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
        ("set-cookie", "a=1"),
    ]
    answer_names = wire.header_names(answer_lines, response=True)
    answer_body = b'{"ok":true}'
    answer_message = wire.response_message(
        1767225611,
        200,
        "/api/x",
        SESSION,
        REQUEST_NONCE,
        RESPONSE_NONCE,
        wire.body_hash(answer_body),
        wire.headers_hash(answer_names, answer_lines),
    )
    signature_headers = [
        (wire.RESP_TS, "1767225611"),
        (wire.RESP_NONCE, RESPONSE_NONCE),
        (wire.RESP_SIGNATURE, wire.b64encode(host_key().sign(answer_message))),
        (wire.RESP_HEADERS, wire.format_header_list(answer_names)),
    ]
    good = answer_lines + signature_headers
    narrowed = [(k, "content-type" if k == wire.RESP_HEADERS else v) for k, v in good]
    altered = [
        ("content-type changed", [(k, "text/html" if k == "content-type" else v) for k, v in good]),
        ("a second content-type", [*good, ("content-type", "text/html")]),
        ("x-app removed", [(k, v) for k, v in good if k != "x-app"]),
        ("the list narrowed", narrowed),
        ("the list dropped", [(k, v) for k, v in good if k != wire.RESP_HEADERS]),
    ]  # fmt: skip
    return {
        "keys": keys_info(),
        "canonical": [
            {
                "names": list(n),
                "lines": lines,
                "canonical_b64": wire.b64encode(
                    wire.canonical_headers(n, [(k, v) for k, v in lines])
                ),
                "hash": wire.headers_hash(n, [(k, v) for k, v in lines]),
            }
            for n, lines in canonical_cases
        ],
        "signable": {
            "request": {n: wire.signable_request_header(n) for n in names},
            "response": {n: wire.signable_response_header(n) for n in names},
        },
        "request": {
            "ts": 1767225610,
            "method": "POST",
            "path_and_query": "/api/x",
            "body_b64": wire.b64encode(body),
            "lines": [list(line) for line in request_lines],
            "sig_headers": wire.format_header_list(request_names),
            "h_headers": h_request,
            "message": request_message.decode(),
            "signature_b64": wire.b64encode(client_key().sign(request_message)),
        },
        "response": {
            "status": 200,
            "path_and_query": "/api/x",
            "body_b64": wire.b64encode(answer_body),
            "lines": [list(line) for line in good],
            "verified": list(answer_names),
            "message": answer_message.decode(),
            "added": [["x-evil", "1"], ["location", "https://evil.example/"]],
            "bad": [{"name": n, "lines": [list(line) for line in ls]} for n, ls in altered],
        },
    }


BUILDERS = {
    "canonical": canonical,
    "spake2": spake2,
    "chunked": chunked,
    "frames": frames,
    "headers": headers,
}


def render(name: str) -> str:
    return json.dumps(BUILDERS[name](), indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    for name in BUILDERS:
        (HERE / f"{name}.json").write_text(render(name), encoding="utf-8")


if __name__ == "__main__":
    main()

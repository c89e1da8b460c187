"""What the trust layer costs per request and per streamed byte, in the sans-IO core.

Per request: checking a signed request (Ed25519 verify, nonce, session) and signing its
answer, against hashing the same body (which any signing scheme must do). Per byte:
framing a streamed body into signed 64 KiB records, against hashing it.

    .venv/bin/python bench/trust.py [--requests 3000] [--mib 64]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent_relay.trust import TrustHost, wire
from agent_relay.trust.keys import public_bytes
from agent_relay.trust.store import TrustedClient


def per_request(host: TrustHost, client: Ed25519PrivateKey, client_id: str, n: int) -> float:
    key = client.public_key()
    session = host.sessions.create(client_id, key, time.time())
    body = b"x" * 1024
    requests = []
    now = int(time.time())
    for _ in range(n):
        nonce = str(uuid.uuid4())
        message = wire.request_message(
            now, "POST", "/api/x", session.session_id, nonce, wire.body_hash(body)
        )
        requests.append(
            {
                wire.SIG_SESSION: session.session_id,
                wire.SIG_TS: str(now),
                wire.SIG_NONCE: nonce,
                wire.SIG_SIGNATURE: wire.b64encode(client.sign(message)),
            }
        )
    start = time.perf_counter()
    for headers in requests:
        verified = host.verify("POST", "/api/x", headers, wire.body_hash(body), now)
        host.signer.sign(verified, 200, wire.body_hash(body), now)
    return (time.perf_counter() - start) / n


def hashing(data: bytes, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        hashlib.sha256(data).digest()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        host = TrustHost.open(Path(tmp))
        client = Ed25519PrivateKey.generate()
        client_id = str(uuid.uuid4())
        host.store.add(
            TrustedClient(client_id, "bench", "", "", "", wire.b64encode(public_bytes(client)))
        )
        host.sync()
        signed = per_request(host, client, client_id, args.requests)
        baseline = hashing(b"x" * 1024, args.requests)
        print(
            f"signed request + signed answer (1 KiB body): {signed * 1e6:.0f} µs each, "
            f"{signed / baseline:.0f}x hashing the body"
        )
        session = host.sessions.create(client_id, client.public_key(), time.time())
        verified = host.verify(
            "GET",
            "/big",
            {
                wire.SIG_SESSION: session.session_id,
                wire.SIG_TS: str(int(time.time())),
                wire.SIG_NONCE: "n",
                wire.SIG_SIGNATURE: wire.b64encode(
                    client.sign(
                        wire.request_message(
                            int(time.time()),
                            "GET",
                            "/big",
                            session.session_id,
                            "n",
                            wire.EMPTY_BODY_HASH,
                        )
                    )
                ),
            },
            wire.EMPTY_BODY_HASH,
            time.time(),
        )
        chunk = b"y" * wire.MAX_CHUNK_PAYLOAD
        count = args.mib * 1024 * 1024 // len(chunk)
        stream = host.signer.stream(
            verified, host.signer.sign(verified, 200, wire.STREAM_SIGNING_V1, 0)
        )
        start = time.perf_counter()
        for _ in range(count):
            stream.feed(chunk)
        stream.end()
        framed = time.perf_counter() - start
        plain = hashing(chunk, count) * count
        mib_s = args.mib / framed
        print(
            f"chunked-v1 stream signing: {mib_s:.0f} MiB/s, "
            f"{framed / plain:.2f}x hashing the same bytes"
        )


if __name__ == "__main__":
    main()

"""Issue 11 item 4: a relayed request that is unsigned or badly signed in a way its head
shows (a value missing, an unknown session, the timestamp out of the window, a used
nonce) is refused before its body is read: the answer comes while the body is still
being sent, and nothing of it is buffered or spilled to a temporary file. Before the
fix the connector read (and spilled) the whole body first: these requests, whose body
never finishes, got no answer at all. Both host adapters."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agent_relay.trust import wire
from tests.support.trust_stack import Stack, trust_stack

MODES = ["connector", "asgi"]
ANNOUNCED = 512 * 1024 * 1024  # a body the connector would have spilled to disk


@pytest.fixture(params=MODES)
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> AsyncIterator[Stack]:
    async with trust_stack(tmp_path, sqlite_url, request.param) as running:
        yield running


async def answer_while_uploading(stack: Stack, headers: dict[str, str]) -> tuple[int, str]:
    """POST a body announced as 512 MiB, send its first 64 KiB and then nothing: the
    status and reason of the answer, which must come without the rest."""
    base = await stack.relay.path()
    address = urlsplit(stack.relay.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        lines = [
            f"POST {base}/echo HTTP/1.1",
            f"Host: {address.netloc}",
            f"Content-Length: {ANNOUNCED}",
            "Content-Type: application/octet-stream",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b"x" * 65536)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        body = await asyncio.wait_for(reader.readexactly(length), 15)
        return status, json.loads(body)["reason"]
    finally:
        writer.close()


def signature_headers(session: str, ts: int | None = None) -> dict[str, str]:
    return {
        wire.SIG_SESSION: session,
        wire.SIG_TS: str(int(time.time()) if ts is None else ts),
        wire.SIG_NONCE: str(uuid.uuid4()),
        wire.SIG_SIGNATURE: wire.b64encode(bytes(64)),
    }


async def test_an_unsigned_request_is_refused_before_its_body(stack: Stack) -> None:
    assert await answer_while_uploading(stack, {}) == (401, "missing_signature")
    assert stack.upstream.posts == 0


async def test_a_partial_signature_is_refused_before_the_body(stack: Stack) -> None:
    headers = signature_headers(str(uuid.uuid4()))
    del headers[wire.SIG_SIGNATURE]
    assert await answer_while_uploading(stack, headers) == (401, "partial_signature")


async def test_an_unknown_session_is_refused_before_the_body(stack: Stack) -> None:
    headers = signature_headers(str(uuid.uuid4()))
    assert await answer_while_uploading(stack, headers) == (401, "unknown_session")


async def test_a_stale_timestamp_is_refused_before_the_body(stack: Stack) -> None:
    headers = signature_headers(str(uuid.uuid4()), ts=int(time.time()) - 3600)
    assert await answer_while_uploading(stack, headers) == (401, "clock_skew")


async def test_a_used_nonce_is_refused_before_the_body(stack: Stack) -> None:
    pairing = await stack.pair()
    async with stack.client(pairing) as client:
        await client.request("POST", "/echo", body=b"once")
    sent = next(r for r in stack.hostile.requests if r.target.endswith("/echo"))
    # The relay replays the accepted request's signature on a new, huge request.
    replayed = {k: v for k, v in sent.headers if k in wire.REQUEST_SIGNATURE_FIELDS}
    assert len(replayed) == 4
    assert await answer_while_uploading(stack, replayed) == (401, "replayed_nonce")
    assert stack.upstream.posts == 1

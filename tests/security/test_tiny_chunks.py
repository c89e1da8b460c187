"""Issue 11 item 2: one host streaming a body of 1-byte chunks must not freeze the shared
relay. The relay used to parse (and write on, one tiny write per chunk) everything
buffered without giving the event loop a turn: with a stream window of megabytes, that
is seconds in which ``/health`` and every other user's traffic wait."""

from __future__ import annotations

import asyncio
import time

from tests.support.relay import running_relay

CHUNKS = 400_000  # 1-byte chunks per flood: 2.4 MB on the wire from the host
FLOODS = 2


async def _download(port: int, target: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    received = b""
    while data := await reader.read(1024 * 1024):
        received += data
    writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    # Whatever the relay's own chunking, the decoded body is every byte the host sent.
    return _dechunked_length(body)


def _dechunked_length(body: bytes) -> int:
    total = 0
    pos = 0
    while True:
        line_end = body.index(b"\r\n", pos)
        size = int(body[pos:line_end].split(b";")[0], 16)
        if size == 0:
            return total
        total += size
        pos = line_end + 2 + size + 2


async def test_a_host_streaming_tiny_chunks_does_not_freeze_health(sqlite_url: str) -> None:
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        base = await relay.path()
        assert relay.service.address is not None
        port = relay.service.address[1]
        floods = [
            asyncio.create_task(_download(port, f"{base}/tiny/{CHUNKS}")) for _ in range(FLOODS)
        ]
        worst = 0.0
        probes = 0
        while not all(flood.done() for flood in floods):
            started = time.perf_counter()
            answer = await relay.client.get("/health")
            worst = max(worst, time.perf_counter() - started)
            probes += 1
            assert answer.status_code == 200
            await asyncio.sleep(0.02)
        # Generous: a healthy relay answers in milliseconds even on a loaded machine.
        assert worst < 1.0, f"/health took {worst:.2f} s during the flood ({probes} probes)"
        assert await asyncio.gather(*floods) == [CHUNKS] * FLOODS
        await host.close()


async def _upload(port: int, target: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {target} HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    block = b"1\r\nx\r\n" * 10_000
    for _ in range(CHUNKS // 10_000):
        writer.write(block)
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_a_caller_uploading_tiny_chunks_does_not_freeze_health(sqlite_url: str) -> None:
    # No signature or pairing needed: anyone with the relay path can send a body.
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        base = await relay.path()
        assert relay.service.address is not None
        port = relay.service.address[1]
        floods = [asyncio.create_task(_upload(port, f"{base}/upload")) for _ in range(FLOODS)]
        worst = 0.0
        while not all(flood.done() for flood in floods):
            started = time.perf_counter()
            answer = await relay.client.get("/health")
            worst = max(worst, time.perf_counter() - started)
            assert answer.status_code == 200
            await asyncio.sleep(0.02)
        assert worst < 1.0, f"/health took {worst:.2f} s during the upload flood"
        for reply in await asyncio.gather(*floods):
            assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
            assert reply.split(b"\r\n\r\n", 1)[1].startswith(b"%d " % CHUNKS)
        await host.close()

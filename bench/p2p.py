"""The WebRTC upgrade against the relay, in one run and one stack on loopback: the real
relay (SQLite), the real connector with its aiortc answerer, a local server, and the Python
client (aiortc offerer), all in this process (so the figures include everyone's CPU on the
same loop: compare the two paths, not against other benches).

Measured for a small JSON answer (``GET /echo``): the latency p50/p99 with one request in
flight and requests/s with 16 in flight, over the data channel and through the relay; and
MiB/s of a 100 MiB body both ways over each: a streamed download (the channel's with the
streamed-body extension) and an upload (the channel's streamed in ``body`` messages paced
by the host's credit; the relay's as one request body). The relay and the channel runs
alternate, ``--rounds`` times each.

    .venv/bin/python bench/p2p.py [--requests 300] [--seconds 5] [--download-mib 100]
                                  [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_webrtc_e2e import webrtc_stack  # noqa: E402

MIB = 1024 * 1024


async def latency(call: Callable[[], Awaitable[object]], count: int) -> tuple[float, float]:
    for _ in range(20):  # warm-up
        await call()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    quantiles = statistics.quantiles(times, n=100)
    return quantiles[49] * 1000, quantiles[98] * 1000


async def throughput(call: Callable[[], Awaitable[object]], seconds: float, width: int) -> float:
    done = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return done / (time.perf_counter() - start)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
        async with webrtc_stack(tmp_path, url) as stack:
            client = await stack.client(answer_timeout=20.0)
            try:
                if not await client.upgrade():
                    raise SystemExit(f"no data channel: {client.last_error}")

                async def direct() -> None:
                    answer = await client.request("GET", "/echo")
                    assert answer.path == "direct", answer.path

                async def relayed() -> None:
                    response, _ = await client.relay.request("GET", "/echo")
                    assert response.status == 200

                rows = []
                for name, call in (("channel", direct), ("relay", relayed)):
                    p50, p99 = await latency(call, args.requests)
                    rps = await throughput(call, args.seconds, 16)
                    rows.append((name, p50, p99, rps))
                size = args.download_mib * MIB
                body = (bytes(range(256)) * (size // 256 + 1))[:size]

                async def download_relay() -> int:
                    got = 0
                    async with client.relay.stream("GET", f"/blob?size={size}") as response:
                        async for chunk in response.iter_bytes():
                            got += len(chunk)
                    return got

                async def download_channel() -> int:
                    got = 0
                    async with client.stream("GET", f"/blob?size={size}") as (head, chunks):
                        assert head.path == "direct"
                        async for chunk in chunks:
                            got += len(chunk)
                    return got

                async def upload_relay() -> int:
                    response, raw = await client.relay.request("POST", "/upload", body=body)
                    assert response.status == 200, raw[:200]
                    return int(json.loads(raw)["size"])

                async def upload_channel() -> int:
                    answer = await client.request("POST", "/upload", body=body)
                    assert answer.path == "direct", answer.path
                    return int(json.loads(answer.body)["size"])

                transfers: dict[str, list[float]] = {}
                for _ in range(args.rounds):  # interleaved: relay, channel, relay, channel
                    for name, run in (
                        ("download relay", download_relay),
                        ("download channel", download_channel),
                        ("upload relay", upload_relay),
                        ("upload channel", upload_channel),
                    ):
                        start = time.perf_counter()
                        assert await run() == size, name
                        elapsed = time.perf_counter() - start
                        transfers.setdefault(name, []).append(size / MIB / elapsed)
                served = stack.answerer.stats.http_served
            finally:
                await client.aclose()
                await client.relay.aclose()
    load = os.getloadavg()
    print(f"bench/p2p.py: one process, loopback, load average {load[0]:.2f} {load[1]:.2f}")
    print("(the machine is shared with other work: compare the rows, not the absolutes)")
    print(f"{'path':<10}{'p50 ms (1)':>12}{'p99 ms (1)':>12}{'req/s (16)':>12}")
    for name, p50, p99, rps in rows:
        print(f"{name:<10}{p50:>12.2f}{p99:>12.2f}{rps:>12.0f}")
    (_, c50, c99, crps), (_, r50, r99, rrps) = rows
    print(f"channel/relay: p50 {c50 / r50:.2f}x, p99 {c99 / r99:.2f}x, req/s {crps / rrps:.2f}x")
    for way in ("download", "upload"):
        relay_mbs = statistics.median(transfers[f"{way} relay"])
        channel_mbs = statistics.median(transfers[f"{way} channel"])
        print(
            f"{args.download_mib} MiB {way}: relay {relay_mbs:.1f} MiB/s, "
            f"channel {channel_mbs:.1f} MiB/s ({channel_mbs / relay_mbs:.2f}x)"
        )
    print(f"(host-side counter: {served} requests served over the channel)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--download-mib", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    asyncio.run(main(parser.parse_args()))

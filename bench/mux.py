"""Yamux over a loopback WebSocket against the same WebSocket carrying the same bytes raw.

Prints throughput for one stream and for 100 concurrent streams, each as a ratio to the
raw WebSocket measured in the same run, and the memory of an idle session and stream.

    .venv/bin/python bench/mux.py [--mib 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from agent_relay.mux import MuxSession, MuxStream
from agent_relay.transport import WebSocketByteStream

MIB = 1024 * 1024
CHUNK = 256 * 1024
WS_OPTIONS: dict[str, object] = {"max_size": None, "compression": None}

Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def websocket_pair(handler: Handler) -> AsyncIterator[ClientConnection]:
    async with ws_serve(handler, "127.0.0.1", 0, **WS_OPTIONS) as server:  # type: ignore[arg-type]
        port = next(iter(server.sockets)).getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/", **WS_OPTIONS) as websocket:  # type: ignore[arg-type]
            yield websocket


async def raw_round(total: int, message: int = CHUNK, senders: int = 1) -> float:
    """Seconds to move ``total`` bytes as binary messages from ``senders`` concurrent
    tasks (the same concurrency as the streams, minus the mux), acknowledged at the end."""

    async def sink(websocket: ServerConnection) -> None:
        received = 0
        while received < total:
            received += len(await websocket.recv(decode=False))
        await websocket.send(b"done")

    block = bytes(message)

    async def send(count: int) -> None:
        for _ in range(count):
            await websocket.send(block)

    async with websocket_pair(sink) as websocket:
        started = time.perf_counter()
        share, extra = divmod(total // message, senders)
        await asyncio.gather(*(send(share + (i < extra)) for i in range(senders)))
        await websocket.recv()
        return time.perf_counter() - started


async def mux_round(total: int, streams: int) -> float:
    """Seconds to move ``total`` bytes over ``streams`` concurrent yamux streams."""

    async def serve(websocket: ServerConnection) -> None:
        session = MuxSession(WebSocketByteStream(websocket), client=False)

        async def drain(stream: MuxStream) -> None:
            while await stream.read():
                pass
            await stream.write(b"done")
            await stream.close()

        async with asyncio.TaskGroup() as tg:
            for _ in range(streams):
                tg.create_task(drain(await session.accept_stream()))
        await session.wait_closed()

    block = bytes(CHUNK)
    share = total // streams

    async def send(session: MuxSession) -> None:
        stream = await session.open_stream()
        sent = 0
        while sent < share:
            size = min(CHUNK, share - sent)
            await stream.write(block if size == CHUNK else block[:size])
            sent += size
        await stream.close()
        assert await stream.read() == b"done"

    async with websocket_pair(serve) as websocket:
        session = MuxSession(WebSocketByteStream(websocket), client=True)
        started = time.perf_counter()
        await asyncio.gather(*(send(session) for _ in range(streams)))
        elapsed = time.perf_counter() - started
        await session.close()
        return elapsed


def best_rate(total: int, seconds: list[float]) -> tuple[float, float]:
    """(best, median) throughput in MB/s (10^6 bytes per second)."""
    rates = [total / s / 1e6 for s in seconds]
    return max(rates), statistics.median(rates)


async def idle_memory(sessions: int, streams: int) -> tuple[float, float, float]:
    """Bytes per idle WebSocket pair, per idle session, per idle stream (both ends)."""
    server_sockets: list[ServerConnection] = []
    ready = asyncio.Event()

    async def hold(websocket: ServerConnection) -> None:
        server_sockets.append(websocket)
        if len(server_sockets) == sessions:
            ready.set()
        await websocket.wait_closed()

    async with ws_serve(hold, "127.0.0.1", 0, **WS_OPTIONS) as server:  # type: ignore[arg-type]
        port = next(iter(server.sockets)).getsockname()[1]
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        clients = [
            await ws_connect(f"ws://127.0.0.1:{port}/", **WS_OPTIONS)  # type: ignore[arg-type]
            for _ in range(sessions)
        ]
        await ready.wait()
        gc.collect()
        after_ws = tracemalloc.get_traced_memory()[0]
        pairs = [
            (
                MuxSession(WebSocketByteStream(c), client=True),
                MuxSession(WebSocketByteStream(s), client=False),
            )
            for c, s in zip(clients, server_sockets, strict=True)
        ]
        await asyncio.sleep(0.2)
        gc.collect()
        after_sessions = tracemalloc.get_traced_memory()[0]
        opener, acceptor = pairs[0]
        opened, accepted = [], []
        for _ in range(streams // 100):  # in batches, within the accept backlog
            opened += [await opener.open_stream() for _ in range(100)]
            accepted += [await acceptor.accept_stream() for _ in range(100)]
        await asyncio.sleep(0.2)
        gc.collect()
        after_streams = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(opened) == len(accepted) == streams
        for a, b in pairs:
            await a.close()
            await b.close()
        for c in clients:
            await c.close()
    return (
        (after_ws - base) / sessions,
        (after_sessions - after_ws) / (2 * sessions),
        (after_streams - after_sessions) / streams,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=128, help="bytes per round, in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    total = args.mib * MIB

    # One unmeasured round of each case first: a relay runs for days, and the allocator's
    # steady state (large buffers reused, not freshly mapped and faulted in) is what
    # counts; a cold process measures page faults instead of the protocol.
    for warm_up in (raw_round(total), raw_round(total, MIB), mux_round(total, 1)):
        await warm_up
    await raw_round(total, senders=100)
    await mux_round(total, 100)
    raw, raw_big, raw_hundred, single, hundred = [], [], [], [], []
    for _ in range(args.rounds):  # interleaved, so drift hits all cases alike
        raw.append(await raw_round(total))
        raw_big.append(await raw_round(total, MIB))
        raw_hundred.append(await raw_round(total, senders=100))
        single.append(await mux_round(total, 1))
        hundred.append(await mux_round(total, 100))
    # The baseline is the faster raw variant: 256 KiB messages (the application's write
    # size) or 1 MiB messages (what the mux's coalesced writes become on the wire).
    raw_median = max(best_rate(total, raw)[1], best_rate(total, raw_big)[1])
    raw_hundred_median = best_rate(total, raw_hundred)[1]
    rows = (
        ("raw WebSocket, 256 KiB messages", raw, None),
        ("raw WebSocket, 1 MiB messages", raw_big, None),
        ("raw WebSocket, 100 senders", raw_hundred, None),
        ("yamux, 1 stream", single, None),
        ("yamux, 100 streams", hundred, raw_hundred_median),
    )
    print(f"bench/mux.py: {args.mib} MiB per round, {args.rounds} rounds, loopback WebSocket")
    print(f"{'case':<34}{'best MB/s':>10}{'median':>10}{'ratio to raw':>14}{'to 100 senders':>16}")
    for name, seconds, same_concurrency in rows:
        best, median = best_rate(total, seconds)
        other = f"{median / same_concurrency:.2f}" if same_concurrency else ""
        print(f"{name:<34}{best:>10.0f}{median:>10.0f}{median / raw_median:>14.2f}{other:>16}")

    per_ws, per_session, per_stream = await idle_memory(sessions=200, streams=4000)
    print("idle memory (tracemalloc, Python heap):")
    print(f"  WebSocket connection pair (baseline, both ends): {per_ws / 1024:8.1f} KiB")
    print(f"  yamux session, one end, on top of it:            {per_session / 1024:8.1f} KiB")
    print(f"  yamux stream, both ends:                          {per_stream:8.0f} B")


if __name__ == "__main__":
    asyncio.run(main())

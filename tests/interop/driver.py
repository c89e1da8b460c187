"""The Python side of the interop protocol (tests/interop/PROTOCOL.md).

The driver listens on loopback, starts a peer program that dials it, runs one yamux
session with ``agent_relay.mux`` against the peer's implementation, and drives the
scenario by opening streams whose first byte names an operation.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import hashlib
import os
import random
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from agent_relay.mux import (
    GoAwayError,
    MuxConfig,
    MuxSession,
    MuxStream,
    SessionClosedError,
    StreamResetError,
)
from agent_relay.transport import SocketByteStream, WebSocketByteStream

BIN = Path(__file__).parent / "bin"
PEERS = {"go": BIN / "go-peer", "rust": BIN / "rust-peer", "js": BIN / "js-peer"}
# yamux-js 0.2.0 never delivers a FIN or a RST to its reader, so no exchange that ends
# with a half-close can finish on it as published. Its peer therefore loads small repairs
# of those two paths (tests/interop/js/patches.js); the unrepaired library is run on what
# it can do (see test_interop.py).
PEER_ENV = {"js": {"YAMUX_JS_PATCHES": "1"}}
BIG_WINDOW = 16 * 1024 * 1024


@functools.lru_cache(maxsize=64)
def generated(seed: int, size: int) -> bytes:
    """The xorshift32 byte stream of PROTOCOL.md (little-endian words)."""
    x = seed or 1
    words = array.array("I", bytes(4 * ((size + 3) // 4)))
    for i in range(len(words)):
        x ^= (x << 13) & 0xFFFF_FFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFF_FFFF
        words[i] = x
    if sys.byteorder == "big":
        words.byteswap()
    return words.tobytes()[:size]


# ------------------------------------------------------------------ responder side


async def respond(stream: MuxStream) -> None:
    """Answer a stream the peer opened: E, S, G or R."""
    try:
        op = await stream.readexactly(1)
        if op == b"E":
            while data := await stream.read():
                await stream.write(data)
            await stream.close()
        elif op == b"S":
            digest = hashlib.sha256()
            count = 0
            while data := await stream.read():
                digest.update(data)
                count += len(data)
            await stream.write(struct.pack(">Q", count) + digest.digest())
            await stream.close()
        elif op == b"G":
            size, seed = struct.unpack(">QI", await stream.readexactly(12))
            await stream.write(generated(seed, size))
            await stream.close()
        elif op == b"R":
            stream.reset()
        else:
            stream.reset()
    except (StreamResetError, SessionClosedError, asyncio.IncompleteReadError):
        pass


async def serve_peer_streams(session: MuxSession) -> None:
    async with asyncio.TaskGroup() as tg:
        while True:
            try:
                stream = await session.accept_stream()
            except SessionClosedError:
                return
            tg.create_task(respond(stream))


# ------------------------------------------------------------------ opener side


async def write_in_chunks(stream: MuxStream, data: bytes, chunk: int = 64 * 1024) -> None:
    view = memoryview(data)
    for start in range(0, len(data), chunk):
        await stream.write(view[start : start + chunk])


async def echo(session: MuxSession, payload: bytes) -> None:
    stream = await session.open_stream()

    async def send() -> None:
        await stream.write(b"E")
        await write_in_chunks(stream, payload)
        await stream.close()

    sender = asyncio.create_task(send())
    got = await stream.read_all(limit=len(payload))
    await sender
    assert got == payload, f"echo of {len(payload)} bytes came back as {len(got)} different bytes"


async def sink(session: MuxSession, payload: bytes) -> MuxStream:
    stream = await session.open_stream()
    await stream.write(b"S")
    await write_in_chunks(stream, payload)
    await stream.close()
    answer = await stream.read_all(limit=40)
    count, digest = struct.unpack(">Q32s", answer)
    assert count == len(payload), f"peer counted {count} of {len(payload)} bytes"
    assert digest == hashlib.sha256(payload).digest(), "peer's SHA-256 differs"
    return stream


async def generate(session: MuxSession, size: int, seed: int) -> None:
    stream = await session.open_stream()
    await stream.write(b"G" + struct.pack(">QI", size, seed))
    await stream.close()  # half-close at once: the answer still arrives
    got = await stream.read_all(limit=size)
    assert got == generated(seed, size), f"generated stream of {size} bytes differs"


async def command(session: MuxSession, request: bytes) -> str:
    stream = await session.open_stream()
    await stream.write(request)
    await stream.close()
    return (await stream.read_all(limit=4096)).decode()


# ------------------------------------------------------------------ scenarios

Scenario = Callable[["Run"], Awaitable[None]]
MIB = 1024 * 1024


@dataclass
class Run:
    session: MuxSession
    peer: str


async def basic(run: Run) -> None:
    await echo(run.session, generated(11, 1024))
    await sink(run.session, generated(12, MIB))
    await generate(run.session, MIB, 13)


async def concurrent(run: Run) -> None:
    size = 256 * 1024
    async with asyncio.TaskGroup() as tg:
        for i in range(64):
            payload = generated(100 + i % 8, size)
            kind = i % 3
            if kind == 0:
                tg.create_task(echo(run.session, payload))
            elif kind == 1:
                tg.create_task(sink(run.session, payload))
            else:
                tg.create_task(generate(run.session, size, 100 + i % 8))


async def big(run: Run) -> None:
    payload = random_payload(64 * MIB)
    await sink(run.session, payload)  # 64 MiB driver → peer
    await echo(run.session, payload)  # and 64 MiB peer → driver


def random_payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


async def half_close(run: Run) -> None:
    await generate(run.session, 300_000, 21)
    stream = await run.session.open_stream()
    payload = generated(22, 200_000)
    await stream.write(b"E" + payload)
    await stream.close()
    assert await stream.read_all(limit=len(payload)) == payload


async def reset(run: Run) -> None:
    stream = await run.session.open_stream()
    await stream.write(b"R")
    try:
        await stream.read()
    except StreamResetError:
        pass
    else:
        raise AssertionError("peer did not reset the stream")
    mid = await run.session.open_stream()
    await mid.write(b"E" + generated(31, 100_000))
    await mid.read()  # the echo has started
    mid.reset()
    await echo(run.session, generated(32, 50_000))


async def window_growth(run: Run) -> None:
    payload = random_payload(64 * MIB)
    stream = await sink(run.session, payload)
    assert stream.max_send_window > 256 * 1024, (
        f"peer never granted more than {stream.max_send_window} bytes of window"
    )
    await echo(run.session, payload[: 16 * MIB])


async def ping(run: Run) -> None:
    for _ in range(3):
        rtt = await run.session.ping(timeout=5)
        assert 0 <= rtt < 5
    assert await command(run.session, b"P") == "OK\n"


async def peer_opens(run: Run) -> None:
    for op in (b"E", b"S", b"G"):
        answer = await command(run.session, b"O" + op + struct.pack(">IQ", 16, 300_000))
        assert answer == "OK\n", f"peer-opened {op.decode()} streams: {answer.strip()}"


async def go_away(run: Run) -> None:
    answer = await command(run.session, b"X")
    if answer == "UNSUPPORTED\n":
        raise AssertionError(f"{run.peer} peer cannot send Go Away")
    assert answer == "OK\n", answer
    assert run.session.remote_go_away == 0
    try:
        await run.session.open_stream()
    except GoAwayError:
        pass
    else:
        raise AssertionError("open_stream() succeeded after the peer's Go Away")


async def close(run: Run) -> None:
    await echo(run.session, b"last words")


SCENARIOS: dict[str, Scenario] = {
    "basic": basic,
    "concurrent": concurrent,
    "big": big,
    "half_close": half_close,
    "reset": reset,
    "window_growth": window_growth,
    "ping": ping,
    "peer_opens": peer_opens,
    "go_away": go_away,
    "close": close,
}


# ------------------------------------------------------------------ plumbing


@contextlib.asynccontextmanager
async def listen(
    transport: str, client: bool, config: MuxConfig
) -> AsyncIterator[tuple[int, asyncio.Future[MuxSession]]]:
    """Listen on loopback; yield the port and a future of the first connection's session."""
    loop = asyncio.get_running_loop()
    session: asyncio.Future[MuxSession] = loop.create_future()
    if transport == "tcp":

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if session.done():
                writer.close()
                return
            stream = SocketByteStream(reader, writer)
            session.set_result(MuxSession(stream, client=client, config=config, name="driver"))

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1], session
        finally:
            server.close()
    else:

        async def handler(websocket: ServerConnection) -> None:
            if session.done():
                return
            mux = MuxSession(WebSocketByteStream(websocket), client=client, config=config)
            session.set_result(mux)
            await mux.wait_closed()

        async with ws_serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as srv:
            yield next(iter(srv.sockets)).getsockname()[1], session


async def run_scenario(
    peer: str, peer_role: str, transport: str, name: str, *, patched: bool = True
) -> None:
    """Start the peer, run one scenario, close, and check the peer exits cleanly."""
    wide = name == "window_growth"
    config = MuxConfig(max_stream_window=BIG_WINDOW if wide else 1024 * 1024)
    driver_is_client = peer_role == "server"
    async with listen(transport, driver_is_client, config) as (port, session_future):
        args = ["--role", peer_role, "--transport", transport, "--connect", f"127.0.0.1:{port}"]
        if wide:
            args += ["--max-window", str(BIG_WINDOW)]
        env = {**os.environ, **(PEER_ENV.get(peer, {}) if patched else {})}
        process = await asyncio.create_subprocess_exec(
            str(PEERS[peer]), *args, stderr=asyncio.subprocess.PIPE, env=env
        )
        assert process.stderr is not None
        stderr_task = asyncio.create_task(process.stderr.read())
        try:
            async with asyncio.timeout(20):
                session = await session_future
            responder = asyncio.create_task(serve_peer_streams(session))
            async with asyncio.timeout(60):
                await SCENARIOS[name](Run(session, peer))
            await session.close()
            responder.cancel()
            async with asyncio.timeout(15):
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        stderr = (await stderr_task).decode(errors="replace")
        assert code == 0, f"{peer} peer exited with {code}:\n{stderr[-3000:]}"

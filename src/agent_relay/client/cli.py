"""The asyncio bodies of the client CLI verbs (``agent-relay request`` and ``ws``):
print only what verified, and keep a file unwritten until all of it did."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from .client import RelayClient
from .keystore import KeyStore, Pairing

WS_LINGER = 1.0


async def run_request(
    pairing: Pairing,
    store: KeyStore,
    token: str | None,
    method: str,
    path: str,
    *,
    body: bytes,
    headers: dict[str, str],
    output: Path | None,
    include: bool,
) -> int:
    async with (
        RelayClient(pairing, token=token, store=store) as client,
        client.stream(method, path, body=body, headers=headers) as response,
    ):
        if include:
            print(f"{response.status}", file=sys.stderr)
            for name, value in response.headers.items():
                print(f"{name}: {value}", file=sys.stderr)
        if output is not None:
            await _to_file(response.iter_bytes(), output)
        else:
            out = sys.stdout.buffer
            async for chunk in response.iter_bytes():
                out.write(chunk)
                out.flush()  # a streamed body (SSE) shows as it verifies
        return response.status


async def _to_file(chunks: AsyncIterator[bytes], output: Path) -> None:
    """Into a temporary file beside ``output``, renamed over it only at the verified end."""
    temporary = output.with_name(f".{output.name}.{os.getpid()}.part")
    try:
        with temporary.open("wb") as handle:
            async for chunk in chunks:
                handle.write(chunk)
        os.replace(temporary, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


async def run_ws(
    pairing: Pairing, store: KeyStore, token: str | None, path: str, linger: float = WS_LINGER
) -> int:
    """Returns the host's close code. At the end of standard input the answers still on
    their way get ``linger`` seconds (the host may also close first), then we close."""
    loop = asyncio.get_running_loop()
    async with (
        RelayClient(pairing, token=token, store=store) as client,
        client.websocket(path) as socket,
    ):

        async def pump_stdin() -> None:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    await asyncio.sleep(linger)
                    await socket.send("close", (1000).to_bytes(2, "big"))
                    return
                await socket.send_text(line.rstrip("\n"))

        sender = asyncio.create_task(pump_stdin())
        try:
            while True:
                frame = await socket.recv()
                if frame.msg_type == "close":
                    return frame.close_code()[0]
                if frame.msg_type == "text":
                    print(frame.payload.decode("utf-8", "replace"), flush=True)
                elif frame.msg_type == "binary":
                    print(frame.payload.hex(), flush=True)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


__all__ = ["run_request", "run_ws"]

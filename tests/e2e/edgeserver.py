"""A local server for the edge cases the sample server cannot make: huge heads, slow and
stalled answers, and a record of OPTIONS requests (which must never reach it through a
relay). Plain asyncio, HTTP/1.1, one request per connection.

    python tests/e2e/edgeserver.py --port N

Routes (GET): ``/echo-head`` answers ``{"head_bytes": n, "relayed": "<x-vk-relayed>"}``;
``/big-head?bytes=N`` answers with an ``x-big`` header of N bytes; ``/slow?seconds=S``
answers after S seconds; ``/stall`` promises 10 bytes, sends 5 and waits forever;
``/options-seen`` says how many OPTIONS requests arrived. Any OPTIONS: 204, counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 1024 * 1024
options_seen = 0


def answer(status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> bytes:  # type: ignore[assignment]
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global options_seen
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    url = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    try:
        if method == "OPTIONS":
            options_seen += 1
            writer.write(answer(204, b""))
        elif url.path == "/echo-head":
            body = {"head_bytes": len(head), "relayed": headers.get("x-vk-relayed")}
            writer.write(
                answer(200, json.dumps(body).encode(), [("content-type", "application/json")])
            )
        elif url.path == "/big-head":
            writer.write(answer(200, b"ok", [("x-big", "b" * int(query["bytes"]))]))
        elif url.path == "/slow":
            await asyncio.sleep(float(query["seconds"]))
            writer.write(answer(200, b"slow ok"))
        elif url.path == "/stall":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
            await writer.drain()
            await asyncio.sleep(3600)
        elif url.path == "/options-seen":
            writer.write(answer(200, str(options_seen).encode()))
        else:
            writer.write(answer(404, b"no such path"))
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port, limit=MAX_HEAD)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))

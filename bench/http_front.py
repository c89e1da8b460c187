"""The relay's HTTP front (h11 on asyncio, ``agent_relay.httpwire.server``) against uvicorn.

Why the relay has its own front: ASGI cannot give a handler the raw socket after a
``101``, so an ASGI relay could not splice WebSocket upgrades byte for byte. This checks
the price: requests/s for a small JSON answer, each server in its own process, loaded by
``wrk`` on loopback; uvicorn with its h11 parser (the same parser as ours) and with
httptools (C), both on a bare ASGI app (no framework, uvicorn's best case).

    .venv/bin/python bench/http_front.py [--seconds 5] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

BODY = b'{"status":"ok"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ the servers


def serve_ours(port: int) -> None:
    from agent_relay.httpwire.server import Exchange, HttpServer, ServerLimits

    async def handler(exchange: Exchange) -> None:
        await exchange.respond(200, BODY, content_type=b"application/json")

    async def on_error(exchange: Exchange, exc: BaseException) -> None:
        await exchange.respond_json(500, {"error": str(exc)})

    async def main() -> None:
        server = HttpServer(handler, on_error, ServerLimits())
        await server.start("127.0.0.1", port)
        await asyncio.Event().wait()

    asyncio.run(main())


async def asgi_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def serve_uvicorn(port: int, http: str) -> None:
    import uvicorn

    uvicorn.run(
        "bench.http_front:asgi_app",
        host="127.0.0.1",
        port=port,
        http=http,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


# ------------------------------------------------------------------ the load


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def load(port: int, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/health"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk run failed:\n{out}")
    return float(match.group(1))


def measure(kind: str, seconds: int, connections: int) -> float:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)])
    try:
        wait_ready(port)
        load(port, 1, connections)  # warm up
        return load(port, seconds, connections)
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--serve", choices=["ours", "uvicorn-h11", "uvicorn-httptools"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.serve == "ours":
        serve_ours(args.port)
        return
    if args.serve:
        serve_uvicorn(args.port, args.serve.removeprefix("uvicorn-"))
        return
    if shutil.which("wrk") is None:
        sys.exit("bench/http_front.py needs wrk: apt-get install wrk")
    results = {
        kind: measure(kind, args.seconds, args.connections)
        for kind in ("ours", "uvicorn-h11", "uvicorn-httptools")
    }
    baseline = results["uvicorn-httptools"]
    print(f"bench/http_front.py: wrk -c{args.connections}, {args.seconds} s, small JSON answer")
    print(f"{'server':<38}{'requests/s':>12}{'ratio to uvicorn+httptools':>30}")
    names = {
        "ours": "agent-relay front (h11, asyncio)",
        "uvicorn-h11": "uvicorn, h11, bare ASGI",
        "uvicorn-httptools": "uvicorn, httptools, bare ASGI",
    }
    for kind, rate in results.items():
        print(f"{names[kind]:<38}{rate:>12.0f}{rate / baseline:>30.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    main()

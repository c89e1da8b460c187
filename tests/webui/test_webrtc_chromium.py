"""The WebRTC upgrade in real headless Chromium (Debian's, driven by playwright-core)
against a real aiortc host on loopback: the real relay, the real connector with its
answerer, a local server with the routes the remote UI reads, and a hostile relay in
front. webrtc_ui.mjs drives the browser; this wrapper runs the processes, gives it a
small control door (host stats, pairing codes, "drop every channel", revoke a client)
and checks what it reports against the host's own counters."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agent_relay.host import Connector, ConnectorConfig, StaticToken, UpstreamPool, UpstreamTarget
from agent_relay.trust import TrustHost
from agent_relay.webrtc.answerer import WebRtcAnswerer
from agent_relay.webrtc.host import OFFER_PATH
from tests.support.connector import FAST, eventually
from tests.support.hostile import Answer, Recorded, hostile_relay, serve_asgi
from tests.support.relay import running_relay

from .test_remote_ui import CLIENTS, SCREENS, chromium

pytest.importorskip("aiortc")
pytestmark = pytest.mark.timeout(240)
FINGERPRINT = re.compile(rb"(a=fingerprint:sha-256 )([0-9A-F:]+)")


@dataclasses.dataclass
class Counts:
    slow: int = 0  # POST /slow runs: the no-double-execution check


def local_server(stopping: asyncio.Event, counts: Counts) -> Starlette:
    """What the remote UI's host screen reads: workspaces, live events, a terminal; and a
    slow POST that counts how often it ran."""

    async def workspaces(request: Request) -> Response:
        return JSONResponse({"workspaces": [{"id": "w1", "name": "webrtc-demo"}]})

    async def repos(request: Request) -> Response:
        return JSONResponse({"repos": [{"name": "relay", "url": "https://example.invalid/r"}]})

    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"method": request.method, "body": body.decode()})

    async def slow(request: Request) -> Response:
        counts.slow += 1
        await asyncio.sleep(2.0)
        return JSONResponse({"slow": counts.slow})

    async def upload(request: Request) -> Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse({"size": size, "sha256": digest.hexdigest()})

    async def broken(request: Request) -> StreamingResponse:
        async def generate() -> AsyncIterator[bytes]:
            yield b"data: first\n\n"
            await asyncio.sleep(0.2)
            raise RuntimeError("the local server fell over mid-body")

        return StreamingResponse(generate(), media_type="text/event-stream")

    async def events(request: Request) -> StreamingResponse:
        async def generate() -> AsyncIterator[bytes]:
            for i in range(600):
                if stopping.is_set():
                    return
                yield f"event: tick\ndata: tick {i}\n\n".encode()
                await asyncio.sleep(0.2)

        return StreamingResponse(generate(), media_type="text/event-stream")

    async def terminal(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("$ ")
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                line = await websocket.receive_text()
                await websocket.send_text(f"{line}\r\n$ ")

    return Starlette(
        routes=[
            Route("/api/workspaces", workspaces),
            Route("/api/workspaces/{id}/repos", repos),
            Route("/api/events", events),
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/slow", slow, methods=["POST"]),
            Route("/upload", upload, methods=["POST"]),
            Route("/broken", broken),
            WebSocketRoute("/api/terminal", terminal),
        ]
    )


def control_door(trust: TrustHost, answerer: WebRtcAnswerer, counts: Counts) -> Starlette:
    """For the driver: the host's channel counters, a fresh pairing code, drop channels."""

    async def stats(request: Request) -> Response:
        stats = dataclasses.asdict(answerer.stats)
        current = trust.current_code(time.time())
        extra = {
            "peers": len(answerer.peers),
            "slow_runs": counts.slow,
            "current_code": current.code if current is not None else None,
        }
        return JSONResponse({**stats, **extra})

    async def code(request: Request) -> Response:
        return JSONResponse({"code": trust.issue_code(time.time()).code})

    async def revoke(request: Request) -> Response:
        return JSONResponse({"revoked": trust.revoke(request.query_params["client"])})

    async def drop(request: Request) -> Response:
        await answerer.close_peers()
        return JSONResponse({"dropped": True})

    return Starlette(
        routes=[
            Route("/stats", stats),
            Route("/code", code, methods=["POST"]),
            Route("/drop", drop, methods=["POST"]),
            Route("/revoke", revoke, methods=["POST"]),
        ]
    )


def swap_fingerprint(recorded: Recorded, answer: Answer) -> Answer:
    """The hostile relay's change: the host's DTLS fingerprint in the signed SDP answer
    replaced by another (a certificate the relay would hold)."""
    if not recorded.target.partition("?")[0].endswith(OFFER_PATH) or answer.status != 200:
        return answer
    other = hashlib.sha256(base64.b64encode(answer.body)).hexdigest().upper()
    fake = ":".join(other[i : i + 2] for i in range(0, 64, 2)).encode()
    body, swaps = FINGERPRINT.subn(lambda m: m.group(1) + fake, answer.body)
    assert swaps, answer.body[:300]
    return Answer(answer.status, answer.headers, body)


async def drive(config: dict[str, Any]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(Path(__file__).with_name("webrtc_ui.mjs")),
        json.dumps(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_OPTIONS": ""},
    )
    async with asyncio.timeout(200):
        out, err = await process.communicate()
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-4000:]
    summary: dict[str, Any] = json.loads(lines[-1])
    assert process.returncode == 0, summary.get("error") or err.decode()[-4000:]
    for screen, violations in summary["axe"].items():
        assert violations == [], (screen, violations)
    return summary


async def test_webrtc_upgrade_in_chromium(tmp_path: Path, sqlite_url: str) -> None:
    browser = chromium()
    stopping = asyncio.Event()
    counts = Counts()
    async with contextlib.AsyncExitStack() as stack:
        relay = await stack.enter_async_context(running_relay(sqlite_url))
        local_url = await stack.enter_async_context(serve_asgi(local_server(stopping, counts)))
        stack.callback(stopping.set)  # runs before the local server stops: SSE ends
        trust = TrustHost.open(tmp_path / "host")
        answerer = WebRtcAnswerer(trust, local_url)
        stack.push_async_callback(answerer.aclose)
        pool = UpstreamPool(UpstreamTarget.parse(local_url))
        stack.push_async_callback(pool.close)
        config = ConnectorConfig(
            relay_url=relay.url, machine_id="machine-1", name="rtc", backoff=FAST
        )
        connector = Connector(config, StaticToken(relay.token), pool, trust=trust, webrtc=answerer)
        running = asyncio.create_task(connector.run())

        async def stop() -> None:
            await connector.stop(timeout=5)
            await running

        stack.push_async_callback(stop)
        await eventually(lambda: connector.state.connected)
        hostile = await stack.enter_async_context(hostile_relay(relay.url))
        hostile.on_answer = swap_fingerprint
        door = await stack.enter_async_context(serve_asgi(control_door(trust, answerer, counts)))
        summary = await drive(
            {
                "clientsDir": str(CLIENTS),
                "chromium": browser,
                "outDir": str(SCREENS),
                "relay": relay.url,
                "hostile": hostile.url,
                "token": relay.token,
                "hostId": str(await relay.host_id()),
                "door": door,
            }
        )
        stopping.set()
    print(json.dumps({k: v for k, v in summary.items() if k not in ("axe", "screens")}))
    stats = summary["hostStats"]
    # What the host counted, beside what the page saw.
    assert stats["channels_opened"] >= 3, stats  # UI, its re-upgrade, the SDK's own client
    assert stats["ws_opened"] >= 2, stats
    assert stats["ws_frames"] >= 2, stats
    assert stats["body_messages"] >= 2, stats  # server-sent events, streamed
    assert stats["http_served"] >= 3, stats
    assert summary["hostile"]["channelsOpened"] == 0, summary["hostile"]
    assert stats["uploads"] >= 1, stats  # a streamed request body
    assert stats["cancelled_by_client"] >= 1, stats
    assert stats["cancelled_by_host"] >= 1, stats
    assert summary["extras"]["later"]["path"] == "relayed", summary["extras"]

"""The demo's sample agent server on uvicorn, over real sockets."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from agent_relay.demo.sample_server import RunningServer, create_app


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    server = RunningServer(create_app(tmp_path / "sample.sqlite3", tick_seconds=0.2))
    port = await server.start()
    yield f"http://127.0.0.1:{port}"
    await server.stop()


async def test_workspaces_and_repos(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        workspaces = (await client.get("/api/workspaces")).json()["workspaces"]
        assert [w["name"] for w in workspaces] == ["agent-relay", "homelab"]
        repos = (await client.get(f"/api/workspaces/{workspaces[0]['id']}/repos")).json()
        assert [r["name"] for r in repos["repos"]] == ["agent-relay", "vibe-kanban"]
        created = await client.post("/api/workspaces", json={"name": "new one"})
        assert created.status_code == 201
        assert (await client.get("/api/workspaces/nope/repos")).status_code == 404
        bad = await client.post("/api/workspaces", content=b"{not json")
        assert bad.status_code == 400
        assert bad.json()["error"]
        assert (await client.post("/api/workspaces", json={"name": ""})).status_code == 400
        assert (await client.get("/api/whoami", headers={"x-vk-relayed": "1"})).json()["relayed"]


async def test_events_stream_while_open(base_url: str) -> None:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("GET", "/api/events") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        seen: list[str] = []
        await client.post("/api/workspaces", json={"name": "watched"})
        async for line in lines:
            if line.startswith("event: "):
                seen.append(line.removeprefix("event: "))
            if line.startswith("data: ") and "watched" in line:
                assert json.loads(line.removeprefix("data: "))["type"] == "workspace_created"
                break
        assert "hello" in seen
        assert "workspace_created" in seen


async def test_terminal_websocket_echoes(base_url: str) -> None:
    async with ws_connect(base_url.replace("http", "ws") + "/api/terminal") as websocket:
        assert "$ " in str(await websocket.recv())
        await websocket.send("ls -la")
        assert await websocket.recv() == "ls -la\r\n$ "
        await websocket.send(b"\x00\x01raw")
        assert await websocket.recv() == b"\x00\x01raw"


async def test_blob_streams_deterministic_bytes(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        size = 300_000
        response = await client.get("/api/blob", params={"size": size})
        assert response.status_code == 200
        assert response.headers["content-length"] == str(size)
        assert response.content == bytes(k % 251 for k in range(size))
        assert (await client.get("/api/blob", params={"size": 0})).content == b""
        for bad in ("-1", "x", str(2**40)):
            refused = await client.get("/api/blob", params={"size": bad})
            assert refused.status_code == 400
            assert refused.json()["error"]


async def test_blob_upload_is_hashed_as_it_streams(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        body = random.randbytes(5 * 1024 * 1024 + 3)  # above the app's 1 MiB JSON limit
        uploaded = await client.post("/api/blob", content=body)
        assert uploaded.status_code == 200
        assert uploaded.json() == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
        empty = await client.post("/api/blob")
        assert empty.json() == {"sha256": hashlib.sha256(b"").hexdigest(), "bytes": 0}
        # Other routes keep the small limit.
        big_json = await client.post("/api/workspaces", content=b"x" * (2 * 1024 * 1024))
        assert big_json.status_code == 413


def test_command_line_refuses_bad_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent_relay.demo.sample_server", "--tick-seconds", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--tick-seconds must be positive" in done.stderr

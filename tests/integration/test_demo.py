"""README command one: `agent-relay demo` as a user runs it, as a real process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
from websockets.asyncio.client import connect as ws_connect


async def test_demo_serves_through_the_relay_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_relay.cli",
        "demo",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())
    try:
        printed = ""
        async with asyncio.timeout(60):
            while "Ctrl-C stops everything." not in printed:
                line = await process.stdout.readline()
                assert line, f"demo exited early:\n{printed}\n{(await stderr).decode()}"
                printed += line.decode()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1/relay/h/[0-9a-f-]+/s/[0-9a-f-]+/)", printed)
        assert match, printed
        browse = match.group(1)
        assert re.search(r"curl -s http://\S+/api/workspaces", printed)
        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(browse)
            assert "Reached through the relay" in page.text
            workspaces = (await client.get(browse + "api/workspaces")).json()["workspaces"]
            assert [w["name"] for w in workspaces][:2] == ["agent-relay", "homelab"]
            async with client.stream("GET", browse + "api/events") as events:
                lines = events.aiter_lines()
                assert await anext(lines) == "retry: 2000"
        async with ws_connect(browse.replace("http", "ws") + "api/terminal") as terminal:
            assert "$ " in str(await terminal.recv())
            await terminal.send("echo hi")
            assert await terminal.recv() == "echo hi\r\n$ "
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in (await stderr).decode()

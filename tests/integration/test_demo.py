"""README command one: `agent-relay demo` as a user runs it, as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from websockets.asyncio.client import connect as ws_connect

CLI = [sys.executable, "-m", "agent_relay.cli"]


@asynccontextmanager
async def running_demo(tmp_path: Path, *extra: str) -> AsyncIterator[str]:
    """Start the demo, yield its banner; on exit stop it with Ctrl-C and check it ended
    cleanly."""
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "demo",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "demo"),
        *extra,
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
        yield printed
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in (await stderr).decode()


async def run_printed(line: str, env: dict[str, str], stdin: bytes = b"") -> str:
    """Run one command line the banner printed, as a user would paste it."""
    argv = shlex.split(line.split("  #")[0])
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(stdin)
    assert process.returncode == 0, f"{line}\n{err.decode()}"
    return out.decode()


def printed_line(banner: str, pattern: str) -> str:
    found = [line.strip() for line in banner.splitlines() if re.search(pattern, line.strip())]
    assert len(found) == 1, (pattern, banner)
    return found[0]


async def test_demo_pairs_a_client_and_answers_only_signed_calls(tmp_path: Path) -> None:
    async with running_demo(tmp_path) as banner:
        env = dict(os.environ)
        for name in ("AGENT_RELAY_DATA_DIR", "AGENT_RELAY_TOKEN"):
            value = printed_line(banner, rf"export {name}=").partition("=")[2]
            env[name] = shlex.split(value)[0]
        assert re.search(r"Pairing code: [A-Z0-9]{6}\b", banner)

        # Unsigned through the relay: the host refuses.
        curl = printed_line(banner, r"curl -s http://\S+/api/workspaces")
        async with httpx.AsyncClient(timeout=10) as client:
            refused = await client.get(curl.split()[-1])
            assert refused.status_code == 401
            assert refused.json()["reason"] == "missing_signature"
            page = await client.get(printed_line(banner, r"^http://\S+/_relay/$"))
            assert page.status_code == 200
            assert "agent-relay host" in page.text

        await run_printed(printed_line(banner, r" pair --relay "), env)
        listing = printed_line(banner, r"request /api/workspaces")
        listed = json.loads(await run_printed(listing, env))
        assert [w["name"] for w in listed["workspaces"]][:2] == ["agent-relay", "homelab"]
        created = json.loads(await run_printed(printed_line(banner, r"request POST "), env))
        assert created["name"] == "from the demo"
        echoed = await run_printed(printed_line(banner, r" ws /api/terminal"), env, b"echo hi\n")
        assert "echo hi" in echoed


async def test_demo_with_allow_unsigned_serves_plain_http_through_the_relay(
    tmp_path: Path,
) -> None:
    async with running_demo(tmp_path, "--allow-unsigned") as banner:
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1/relay/h/[0-9a-f-]+/s/[0-9a-f-]+/)", banner)
        assert match, banner
        browse = match.group(1)
        assert re.search(r"curl -s http://\S+/api/workspaces", banner)
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

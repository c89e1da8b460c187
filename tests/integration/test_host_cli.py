"""``agent-relay host`` as a process: configured from the environment and flags, serving
through a real relay, and stopping gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent_relay.host.identity import MACHINE_ID_FILE

from .localserver import LocalServer, local_server
from .test_relay import Relay, running_relay


@pytest.fixture
async def relay(sqlite_url: str) -> AsyncIterator[Relay]:
    async with running_relay(sqlite_url) as running:
        yield running


@pytest.fixture
async def local() -> AsyncIterator[LocalServer]:
    async with local_server() as server:
        yield server


class Process:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode().rstrip())

    async def wait_for_line(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        regex = re.compile(pattern)
        for _ in range(int(timeout * 100)):
            for line in self.lines:
                if match := regex.search(line):
                    return match
            if self._reading.done():
                break
            await asyncio.sleep(0.01)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))

    async def wait(self, timeout: float) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._reading
        return code


_OURS = {
    "VK_SHARED_RELAY_API_BASE",
    "AGENT_RELAY_TOKEN",
    "AGENT_RELAY_UPSTREAM",
    "AGENT_RELAY_ALLOW_UNSIGNED",
}


async def start_host(*args: str, env: dict[str, str]) -> Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from agent_relay.cli import main; main()",
        "host",
        *args,
        env={**{k: v for k, v in os.environ.items() if k not in _OURS}, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Process(process)


async def test_host_command_serves_and_stops_on_sigterm(
    relay: Relay, local: LocalServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(relay.token + "\n")
    token_file.chmod(0o600)
    data_dir = tmp_path / "data"
    host = await start_host(
        "--allow-unsigned",  # plain requests below; signed ones: test_trust_cli.py
        "--upstream",
        local.url,
        "--token-file",
        str(token_file),
        "--data-dir",
        str(data_dir),
        "--name",
        "cli host",
        "--status-listen",
        "127.0.0.1:0",
        "--shutdown-timeout",
        "5",
        env={"VK_SHARED_RELAY_API_BASE": relay.url + "/"},
    )
    try:
        status_url = (await host.wait_for_line(r"status: (http://\S+)")).group(1)
        await host.wait_for_line(r"connected to ws://127\.0\.0\.1:\d+/v1/relay/connect since ")
        machine_id = (data_dir / MACHINE_ID_FILE).read_text().strip()
        base = await relay.path(machine_id)
        assert (await relay.client.post(f"{base}/echo", content=b"hi")).content == b"hi"
        async with httpx.AsyncClient() as client:
            status = (await client.get(status_url)).json()
        assert status["connected"] is True
        assert status["name"] == "cli host"
        assert status["machine_id"] == machine_id
        pending = asyncio.create_task(relay.client.get(f"{base}/sleep/0.5"))
        for _ in range(500):
            if local.busy:
                break
            await asyncio.sleep(0.01)
        host.process.send_signal(signal.SIGTERM)
        response = await pending
        assert response.status_code == 200
        assert response.content == b"slept"
        assert await host.wait(10) == 0
        assert any(line.endswith("stopped") for line in host.lines)
    finally:
        if host.process.returncode is None:
            host.process.kill()
            await host.process.wait()


async def test_host_command_refuses_bad_settings(tmp_path: Path) -> None:
    host = await start_host(
        "--relay",
        "ftp://relay.example",
        "--upstream",
        "http://127.0.0.1:1",
        "--token",
        "t",
        "--data-dir",
        str(tmp_path),
        env={},
    )
    assert await host.wait(10) == 1
    assert any("the relay URL must be http(s)://" in line for line in host.lines)
    no_token = await start_host(
        "--relay", "https://relay.example", "--upstream", "http://127.0.0.1:1", env={}
    )
    assert await no_token.wait(10) == 2
    assert any("--token, --token-file or --token-command" in line for line in no_token.lines)

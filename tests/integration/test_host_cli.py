"""``agent-relay host`` as a process: configured from the environment and flags, serving
through a real relay, and stopping gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from agent_relay.host.identity import MACHINE_ID_FILE
from tests.support.cli import start_host
from tests.support.localserver import LocalServer
from tests.support.relay import Relay


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

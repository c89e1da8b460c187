"""The README's stand-alone section, line by line, as a person follows it: add a user,
issue a token, start the relay, connect a host, make a pairing code, pair, call. Every
step is a real `agent-relay` process; only the local agent server is the tests' own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.support.cli_runner import Cli
from tests.support.localserver import local_server


@contextlib.asynccontextmanager
async def background(cli: Cli, *args: str, wait_for: str) -> AsyncIterator[str]:
    """A long-running command; yields the first stderr line holding ``wait_for``."""
    env = {**os.environ, "HOME": str(cli.home), "AGENT_RELAY_DATA_DIR": str(cli.home / "data")}
    for name in ("AGENT_RELAY_TOKEN", "VK_SHARED_RELAY_API_BASE", "RELAY_LISTEN_ADDR"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent_relay.cli", *args,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "".join(seen)
                seen.append(line)
                if wait_for in line:
                    break
        yield line
    finally:
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stderr.read(), 60)
        await process.wait()
        output = "".join(seen) + rest.decode()
        cli.outputs.append(output)
        assert process.returncode == 0, output


async def test_the_stand_alone_section(cli: Cli, tmp_path: Path) -> None:
    async def step(*args: str) -> str:
        done = await asyncio.to_thread(cli, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    # agent-relay users add alice
    await step("users", "add", "alice")
    # TOKEN=$(agent-relay tokens issue alice --ttl 30d)
    token = await step("tokens", "issue", "alice", "--ttl", "30d")
    token_file = tmp_path / "relay-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    # agent-relay server --listen … (port 0 here: any free port, which it prints)
    async with (
        background(
            cli, "server", "--listen", "127.0.0.1:0", wait_for="relay listening on"
        ) as listening,
        local_server() as local,
    ):
        port = re.search(r"relay listening on 127\.0\.0\.1:(\d+)", listening)
        assert port is not None
        relay = f"http://127.0.0.1:{port.group(1)}"
        # agent-relay host --relay … --upstream … --token-file …
        async with background(
            cli, "host", "--relay", relay, "--upstream", local.url, "--token-file",
            str(token_file), "--name", "my-pod", wait_for="connected",
        ):  # fmt: skip
            # The host's id, from the relay's hosts list.
            async with httpx.AsyncClient(base_url=relay, timeout=10) as http:
                answer = await http.get("/v1/hosts", headers={"Authorization": f"Bearer {token}"})
            [host] = answer.json()["hosts"]
            assert host["name"] == "my-pod"
            # agent-relay host pair-code
            code = await step("host", "pair-code")
            # agent-relay host status  (the running connector, read from its data dir)
            for _ in range(50):  # its status file is rewritten every second
                status = await asyncio.to_thread(cli, "host", "status")
                if status.returncode == 0:
                    break
                await asyncio.sleep(0.1)
            assert status.stdout.startswith(f"connected to ws://127.0.0.1:{port.group(1)}")
            # agent-relay pair --relay … --code …  (the only online host: no --host needed)
            await step("pair", "--relay", relay, "--code", code, "--token", token)
            # agent-relay pairings list
            assert (await step("pairings", "list")).split("\t")[:2] == [host["id"], "my-pod"]
            # agent-relay request /headers  (GET, body on stdout: what the local server got)
            body = await step("request", "/headers")
            seen = json.loads(body)
            assert seen["target"] == "/headers"
            assert ["x-vk-relayed", "1"] in seen["headers"]

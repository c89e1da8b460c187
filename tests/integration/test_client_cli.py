"""``agent-relay pair``, ``request`` and ``ws`` as a user runs them: real processes against
the real relay, connector and protect()ed local server of test_trust_e2e."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.trust_stack import BIG, Stack, flip_last_byte, trust_stack

TIMEOUT = 30


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: str


async def cli(stack: Stack, *args: str, stdin: bytes = b"", data_dir: Path | None = None) -> Result:
    env = {
        **os.environ,
        "AGENT_RELAY_DATA_DIR": str(data_dir or stack.data_dir / "cli"),
        "AGENT_RELAY_TOKEN": stack.relay.token,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_relay.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out, err.decode())


@pytest.fixture
async def stack(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Stack]:
    async with trust_stack(tmp_path, sqlite_url) as running:
        yield running


async def pair(stack: Stack, relay_url: str | None = None) -> Result:
    code = stack.host.issue_code(time.time()).code
    return await cli(
        stack,
        "pair",
        "--relay",
        relay_url or stack.hostile.url,
        "--host",
        stack.host_id,
        "--code",
        code.lower(),
        "--name",
        "test laptop",
    )


async def test_pair_request_and_ws_from_the_command_line(stack: Stack) -> None:
    paired = await pair(stack)
    assert paired.status == 0, paired.stderr
    assert "paired with host" in paired.stderr
    [client] = stack.host.list_clients()
    assert client.client_name == "test laptop"
    assert client.client_browser == "agent-relay"
    files = list((stack.data_dir / "cli" / "pairings").iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600

    posted = await cli(stack, "request", "POST", "/echo?x=1", "--data", "hello")
    assert posted.status == 0, posted.stderr
    assert json.loads(posted.stdout)["body"] == "hello"

    target = stack.data_dir / "big.bin"
    downloaded = await cli(stack, "request", "/big", "-o", str(target))
    assert downloaded.status == 0, downloaded.stderr
    assert target.read_bytes() == BIG

    events = await cli(stack, "request", "/events", "--host", stack.host_id)
    assert events.stdout == b"".join(f"data: event {i}\n\n".encode() for i in range(3))

    missing = await cli(stack, "request", "/nowhere")
    assert missing.status == 1
    assert "the host answered 404" in missing.stderr

    ws = await cli(stack, "ws", "/terminal", stdin=b"one\ntwo\nbye\n")
    assert ws.stdout.decode().splitlines() == ["echo:one", "echo:two"], ws.stderr
    assert ws.status == 1
    assert "code 4000" in ws.stderr


async def test_tampered_answer_prints_nothing_and_fails(stack: Stack) -> None:
    assert (await pair(stack)).status == 0
    stack.hostile.on_answer = flip_last_byte
    tampered = await cli(stack, "request", "/echo")
    assert tampered.status == 1
    assert tampered.stdout == b""
    assert "altered" in tampered.stderr or "does not verify" in tampered.stderr
    assert "Traceback" not in tampered.stderr
    target = stack.data_dir / "big.bin"
    tampered = await cli(stack, "request", "/big", "-o", str(target))
    assert tampered.status == 1
    assert not target.exists()  # never a partial, unverified file
    assert not list(stack.data_dir.glob(".big.bin*"))


async def test_clear_errors(stack: Stack) -> None:
    unpaired = await cli(stack, "request", "/echo")
    assert unpaired.status == 1
    assert "agent-relay pair" in unpaired.stderr
    wrong = await cli(
        stack, "pair", "--relay", stack.relay.url, "--host", stack.host_id, "--code", "ABC"
    )
    assert wrong.status == 1
    assert "6 characters" in wrong.stderr
    stack.host.issue_code(time.time())
    guessed = await cli(
        stack, "pair", "--relay", stack.relay.url, "--host", stack.host_id, "--code", "ZZZZZZ"
    )
    assert guessed.status == 1
    assert "wrong code: it is now used up" in guessed.stderr
    bad_host = await cli(
        stack, "pair", "--relay", stack.relay.url, "--host", "not-a-uuid", "--code", "ZZZZZZ"
    )
    assert bad_host.status == 1
    assert "no host named 'not-a-uuid' at the relay; its hosts: test-host" in bad_host.stderr
    for result in (unpaired, wrong, guessed, bad_host):
        assert "Traceback" not in result.stderr

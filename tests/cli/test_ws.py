"""`agent-relay ws` ends as soon as the host closes, even with standard input still open."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from tests.support.trust_stack import trust_stack


async def test_ws_exits_at_once_when_the_host_closes(tmp_path: Path, sqlite_url: str) -> None:
    async with trust_stack(tmp_path, sqlite_url) as stack:
        env = {
            **os.environ,
            "AGENT_RELAY_DATA_DIR": str(tmp_path / "cli"),
            "AGENT_RELAY_TOKEN": stack.relay.token,
        }
        code = stack.host.issue_code(time.time()).code
        paired = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_relay.cli", "pair", "--relay", stack.relay.url,
            "--host", stack.host_id, "--code", code, env=env,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(paired.communicate(), 60)
        assert paired.returncode == 0, err
        ws = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_relay.cli", "ws", "/terminal", env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert ws.stdin is not None
        assert ws.stdout is not None
        assert ws.stderr is not None
        ws.stdin.write(b"one\nbye\n")  # the sample terminal closes with 4000 on "bye"
        await ws.stdin.drain()
        # Standard input stays open: the command must still end, within seconds.
        out = await asyncio.wait_for(ws.stdout.read(), 20)
        err = await asyncio.wait_for(ws.stderr.read(), 20)
        assert await asyncio.wait_for(ws.wait(), 20) == 1
        ws.stdin.close()
    assert out.decode().splitlines() == ["echo:one"]
    assert err.decode().strip().splitlines()[-1].startswith("Error: closed by host: ")
    assert err.decode().strip().endswith("(code 4000)")
    assert "Traceback" not in err.decode()

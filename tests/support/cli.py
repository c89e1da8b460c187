"""The agent-relay command run as a real child process."""

from __future__ import annotations

import asyncio
import os
import re
import sys


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

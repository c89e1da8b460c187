"""`request` at a terminal: a binary answer is not dumped on it (unless -o -), and a
download with -o shows its progress on a terminal stderr."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from tests.support.trust_stack import BIG, trust_stack


def _run_on_terminal(args: list[str], env: dict[str, str], which: str) -> tuple[int, bytes, bytes]:
    """Runs the command with ``which`` (stdout or stderr) on a pseudo-terminal; returns
    the exit status, what the terminal showed and the other stream."""
    leader, follower = pty.openpty()
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, which: follower}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_relay.cli", *args], env=env, stdin=subprocess.DEVNULL,
        **streams,  # type: ignore[call-overload]
    )  # fmt: skip
    os.close(follower)
    shown = bytearray()
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the follower side closed
            break
        if not data:
            break
        shown += data
    os.close(leader)
    out, err = process.communicate(timeout=60)
    return process.returncode, bytes(shown), out if which == "stderr" else err


async def test_binary_to_a_terminal_and_progress(tmp_path: Path, sqlite_url: str) -> None:
    async with trust_stack(tmp_path, sqlite_url) as stack:
        env = {
            **os.environ,
            "AGENT_RELAY_DATA_DIR": str(tmp_path / "cli"),
            "AGENT_RELAY_TOKEN": stack.relay.token,
        }
        code = stack.host.issue_code(time.time()).code
        paired = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "agent_relay.cli", "pair", "--relay", stack.relay.url,
             "--host", stack.host_id, "--code", code],
            env=env, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert paired.returncode == 0, paired.stderr

        status, shown, err = await asyncio.to_thread(
            _run_on_terminal, ["request", "/big"], env, "stdout"
        )
        assert status == 1, err
        assert shown == b""
        assert err.decode().strip().splitlines()[-1] == (
            "Error: the answer is binary (application/octet-stream); not printed to the "
            "terminal: save it with -o FILE, or give -o - to print it anyway"
        )
        status, shown, _ = await asyncio.to_thread(
            _run_on_terminal, ["request", "/big", "-o", "-"], env, "stdout"
        )
        assert status == 0
        assert len(shown) >= len(BIG)  # a terminal may turn \n into \r\n

        target = tmp_path / "big.bin"
        status, shown, _ = await asyncio.to_thread(
            _run_on_terminal, ["request", "/big", "-o", str(target)], env, "stderr"
        )
        assert status == 0, shown
        assert target.read_bytes() == BIG
        # The body is streamed (no Content-Length): bytes and rate, no time left.
        last = [part for part in shown.decode().split("\r") if part.strip()][-1].strip()
        assert last.startswith(f"{len(BIG) / 1e6:.1f} MB  "), shown
        assert last.endswith("/s")
        assert "Traceback" not in shown.decode()

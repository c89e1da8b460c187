"""The command line run as a user runs it: a real child process with a clean
environment, its exit status and what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cli:
    """Runs ``agent-relay`` with a clean environment and its own data dir."""

    home: Path
    outputs: list[str] = field(default_factory=list)

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AGENT_RELAY_", "VK_", "RELAY_", "VIBEKANBAN_"))
            and key not in ("DATABASE_URL", "SERVER_DATABASE_URL")
        }
        env["HOME"] = str(self.home)
        env["AGENT_RELAY_DATA_DIR"] = str(self.home / "data")
        done = subprocess.run(
            [sys.executable, "-m", "agent_relay.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        self.outputs += [done.stdout, done.stderr]
        return done


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The message of a command that failed cleanly: exit status 1, one line on stderr."""
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines, done.stderr
    assert lines[-1].startswith("Error: "), done.stderr
    return lines[-1].removeprefix("Error: ")


def usage_error(done: subprocess.CompletedProcess[str]) -> str:
    """The message of a command refused for its arguments: exit status 2 (click's)."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    return done.stderr.strip().splitlines()[-1].removeprefix("Error: ")

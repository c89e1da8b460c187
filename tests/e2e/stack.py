"""The whole system as real processes on loopback: the relay (`agent-relay server` on
SQLite in a temporary data dir), the sample local agent server, and the host connector
(`agent-relay host`), plus a user and a token made with the admin commands.

Each process is started by exactly one command-line function below, so a new required
flag (for example the connector's coming ``--allow-unsigned``) is added in one place.
Every wait is bounded; every process is stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent_relay.demo.sample_server import blob_bytes
from agent_relay.keyfile import write_secret_file

AGENT_RELAY = Path(sys.executable).with_name("agent-relay")
READY_TIMEOUT = 30.0  # seconds for a process to answer after it is spawned
SHUTDOWN_TIMEOUT = 5  # seconds the relay and the connector give requests on SIGTERM
STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL
ADMIN_TIMEOUT = 60.0  # seconds for `users add` / `tokens issue`
SSE_TICK = 0.3  # seconds between the sample server's tick events
USER = "e2e"
LOG_TAIL = 6000  # characters of each log shown when a test fails

# Processes currently started by a stack: their logs go into the report of a failing test.
LIVE: list[Process] = []
# Measured figures, printed by the tests and again in the terminal summary.
FIGURES: list[str] = []


def report(figure: str) -> None:
    print(figure)
    FIGURES.append(figure)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------- command lines


def admin_command(data_dir: Path, *args: str) -> list[str]:
    return [str(AGENT_RELAY), *args, "--data-dir", str(data_dir)]


def relay_command(port: int, data_dir: Path) -> list[str]:
    return [
        str(AGENT_RELAY),
        "server",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        "--shutdown-timeout",
        str(SHUTDOWN_TIMEOUT),
    ]


def sample_server_command(port: int, database: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agent_relay.demo.sample_server",
        "--port",
        str(port),
        "--database",
        str(database),
        "--tick-seconds",
        str(SSE_TICK),
    ]


def connector_command(
    relay_url: str, upstream_url: str, token_file: Path, status_port: int, data_dir: Path
) -> list[str]:
    return [
        str(AGENT_RELAY),
        "host",
        "--relay",
        relay_url,
        "--upstream",
        upstream_url,
        "--token-file",
        str(token_file),
        "--status-listen",
        f"127.0.0.1:{status_port}",
        "--data-dir",
        str(data_dir),
        "--name",
        "e2e-host",
        "--shutdown-timeout",
        str(SHUTDOWN_TIMEOUT),
        # These tests are about transport; the trust layer has its own suites.
        "--allow-unsigned",
    ]


# ------------------------------------------------------------------------ processes


class ProcessFailed(AssertionError):
    pass


def get_json(url: str) -> Any:
    """The JSON body of a 200 answer, else None (refused, timed out, other status)."""
    try:
        response = httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


class Process:
    """One child process with its output in files, restartable with the same command."""

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, ready: Callable[[], bool]
    ) -> None:
        self.name = name
        self.argv = argv
        self.ready = ready
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.starts = 0
        self.killed_after_sigterm = False  # SIGTERM was not enough
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._popen is not None, f"{self.name} was never started"
        return self._popen.pid

    @property
    def exit_code(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, timeout: float = READY_TIMEOUT) -> float:
        """Spawn and wait until ready; returns the seconds that took."""
        began = time.monotonic()
        self.spawn()
        self.wait_ready(timeout)
        return time.monotonic() - began

    def spawn(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        banner = f"--- start {self.starts}: {' '.join(self.argv)}\n".encode()
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            out.write(banner)
            err.write(banner)
            out.flush()
            err.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # a Ctrl-C on the test run does not reach it first
            )
        if self not in LIVE:
            LIVE.append(self)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self._popen is not None
            code = self._popen.poll()
            if code is not None:
                raise ProcessFailed(f"{self.name} exited with {code} while starting\n{self.logs()}")
            if self.ready():
                return
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name} not ready after {timeout} s\n{self.logs()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns the exit status."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.killed_after_sigterm = True
                self._popen.kill()
                self._popen.wait(STOP_TIMEOUT)
        return self._popen.returncode

    def close(self) -> int | None:
        """Stop it for good: its logs no longer go into failure reports."""
        code = self.stop()
        if self in LIVE:
            LIVE.remove(self)
        return code

    def signal(self, signum: int) -> None:
        assert self._popen is not None
        self._popen.send_signal(signum)

    def wait(self) -> int:
        """The exit status, once the process ends by itself (within STOP_TIMEOUT)."""
        assert self._popen is not None
        return self._popen.wait(STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to say goodbye."""
        assert self._popen is not None
        self._popen.kill()
        self._popen.wait(STOP_TIMEOUT)

    def rss(self) -> int:
        """Resident memory in bytes (VmRSS)."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for {self.name}")

    def logs(self) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            text = path.read_text(errors="replace") if path.exists() else ""
            if len(text) > LOG_TAIL:
                text = "…" + text[-LOG_TAIL:]
            parts.append(f"=== {self.name} {path.name} ===\n{text}")
        return "\n".join(parts)


# ---------------------------------------------------------------------------- stack


@dataclass
class Stack:
    root: Path
    relay: Process
    sample: Process
    connector: Process
    relay_url: str
    sample_url: str
    status_url: str
    token: str
    host_id: str = ""
    base: str = ""  # {relay_url}/v1/relay/h/{host_id}/s/{session_id}: the sample server

    @property
    def ws_base(self) -> str:
        return "ws" + self.base.removeprefix("http")

    def status(self) -> dict[str, Any] | None:
        status: dict[str, Any] | None = get_json(self.status_url)
        return status

    def connected(self) -> bool:
        status = self.status()
        return bool(status and status["connected"] and status["host_id"])

    def processes(self) -> list[Process]:
        return [self.connector, self.sample, self.relay]


def admin(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        admin_command(data_dir, *args),
        capture_output=True,
        text=True,
        timeout=ADMIN_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise ProcessFailed(f"agent-relay {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    """User and token, then the relay and the sample server, then the connector; a relay
    session on the host. Everything is stopped on the way out, whatever happened."""
    relay_port, sample_port, status_port = free_port(), free_port(), free_port()
    relay_data, host_data = root / "relay-data", root / "host-data"
    relay_url = f"http://127.0.0.1:{relay_port}"
    sample_url = f"http://127.0.0.1:{sample_port}"
    admin(relay_data, "users", "add", USER)
    token = admin(relay_data, "tokens", "issue", USER, "--ttl", "2h").strip()
    token_file = root / "token"
    write_secret_file(token_file, (token + "\n").encode())

    relay = Process(
        "relay",
        relay_command(relay_port, relay_data),
        root,
        ready=lambda: get_json(f"{relay_url}/health") is not None,
    )
    sample = Process(
        "sample-server",
        sample_server_command(sample_port, root / "sample.sqlite3"),
        root,
        ready=lambda: get_json(f"{sample_url}/api/whoami") is not None,
    )
    stack = Stack(
        root=root,
        relay=relay,
        sample=sample,
        connector=relay,  # replaced just below (its readiness reads the stack)
        relay_url=relay_url,
        sample_url=sample_url,
        status_url=f"http://127.0.0.1:{status_port}/_relay/status",
        token=token,
    )
    stack.connector = Process(
        "connector",
        connector_command(relay_url, sample_url, token_file, status_port, host_data),
        root,
        ready=stack.connected,
    )
    try:
        relay.spawn()
        sample.spawn()
        relay.wait_ready()
        sample.wait_ready()
        stack.connector.start()
        status = stack.status()
        assert status is not None
        stack.host_id = str(status["host_id"])
        created = httpx.post(
            f"{relay_url}/v1/relay/create/{stack.host_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 200, created.text
        stack.base = f"{relay_url}/v1/relay/h/{stack.host_id}/s/{created.json()['session_id']}"
        yield stack
    finally:
        for process in stack.processes():
            process.close()


MIB = 1024 * 1024


def expected_blob_digest(size: int) -> str:
    digest = hashlib.sha256()
    step = 64 * 1024
    for offset in range(0, size, step):
        digest.update(blob_bytes(offset, min(step, size - offset)))
    return digest.hexdigest()

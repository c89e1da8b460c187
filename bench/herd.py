"""The restart herd: how fast 1,000 hosts come back after the relay restarts.

The relay runs as its own process (``agent-relay server`` on SQLite, or on a PostgreSQL
URL); this process plays the hosts: real connectors (``agent_relay.host.Connector``, with
their production backoff) over loopback WebSockets. The relay is restarted by SIGKILL and
by SIGTERM; the figures are, per restart: when the last host (and the 99th percentile)
was back, counted from the moment the new relay's listener opened (its first accepted
TCP connection) and from the signal;
the slowest ``/health`` answer during the herd (probed from a separate process, so this
busy one does not inflate it); the kernel's listen-queue overflows
(``/proc/net/netstat`` ListenOverflows, machine-wide: other load on the machine counts
too); control channels upgraded per host and connects refused while busy (the relay's
``/metrics``); and the relay's CPU time for the herd.

    .venv/bin/python bench/herd.py [--hosts 1000] [--database-url URL]

The module is also the soak suite's harness (``tests/soak/``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_relay.host import (
    Connector,
    ConnectorConfig,
    StaticToken,
    UpstreamPool,
    UpstreamTarget,
)

AGENT_RELAY = Path(sys.executable).with_name("agent-relay")
TARGET_P99 = 5.0  # seconds until every host is back after a restart (issue 15 item 5)
TARGET_HEALTH = 0.1  # seconds: /health answers within this throughout
READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listen_overflows() -> int:
    """The kernel's count of connections dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# ------------------------------------------------------------------------- the relay


class RelayProcess:
    """``agent-relay server`` as a child process, restartable on the same port."""

    def __init__(
        self, data_dir: Path, *, database_url: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AGENT_RELAY_MAX_HOSTS_PER_USER": "100000",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "relay.log"
        self._runs = 0

    def _database(self) -> list[str]:
        return ["--database-url", self.database_url] if self.database_url else []

    def admin(self, *args: str) -> str:
        result = subprocess.run(
            [str(AGENT_RELAY), *args, "--data-dir", str(self.data_dir), *self._database()],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"agent-relay {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def user_token(self, name: str = "herd") -> str:
        self.admin("users", "add", name)
        return self.admin("tokens", "issue", name, "--ttl", "1d").splitlines()[0].strip()

    def start(self) -> None:
        self._runs += 1
        log = self.log_path.open("ab")
        log.write(f"---- run {self._runs}\n".encode())
        command = [
            str(AGENT_RELAY),
            "server",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            "--shutdown-timeout",
            "2",
            *self._database(),
        ]
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Poll /health until it answers; the monotonic time it first did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the relay exited ({self.process.returncode}):\n{self.logs()}")
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    if await http_status(self.port, "/health") == 200:
                        return time.monotonic()
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the relay did not answer /health within {timeout} s:\n{self.logs()}")

    async def wait_listening(self, timeout: float = READY_TIMEOUT) -> float:
        """Poll the port until it accepts a TCP connection; the monotonic time it first
        did (the herd starts then, before /health can answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the relay exited ({self.process.returncode}):\n{self.logs()}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                opened = time.monotonic()
                writer.close()
                return opened
            await asyncio.sleep(0.005)
        raise RuntimeError(f"the relay did not listen within {timeout} s:\n{self.logs()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
            await asyncio.sleep(0.01)
        return self.process.returncode

    def cpu_seconds(self) -> float:
        """User + system CPU time of the running relay so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def metrics(self) -> dict[str, float]:
        body = await http_body(self.port, "/metrics")
        values: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    values[name] = float(value)
        return values

    def logs(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def http_body(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: herd\r\nconnection: close\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError(f"GET {path}: {head[:40]!r}")
    return body


async def http_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: herd\r\nconnection: close\r\n\r\n".encode())
        line = await reader.readline()
    finally:
        writer.close()
    return int(line.split()[1])


# ------------------------------------------------------------------------- the hosts


class Fleet:
    """``count`` real connectors in this process, one machine id each, one token."""

    def __init__(self, relay_url: str, token: str, count: int) -> None:
        # The hosts serve no request here: the upstream is never dialled.
        self.pool = UpstreamPool(UpstreamTarget.parse("http://127.0.0.1:9"))
        self.connectors = [
            Connector(
                ConnectorConfig(
                    relay_url=relay_url,
                    machine_id=f"herd-{i:05d}",
                    name=f"herd-{i:05d}",
                    look_up_host_id=False,
                ),
                StaticToken(token),
                self.pool,
            )
            for i in range(count)
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self.connectors)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(c.run()) for c in self.connectors]

    def connected(self) -> int:
        return sum(1 for c in self.connectors if c.state.connected)

    def connections(self) -> list[int]:
        return [c.state.connections for c in self.connectors]

    def machine_ids(self, *, connected: bool) -> set[str]:
        return {c.config.machine_id for c in self.connectors if c.state.connected is connected}

    async def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.connected() < len(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.connected()}/{len(self)} hosts connected in time")
            await asyncio.sleep(0.05)

    async def wait_back(self, before: list[int], timeout: float) -> list[float]:
        """The monotonic time each host opened a new control channel (after ``before``,
        the connection counts of then); raises if some are not back in time."""
        back: list[float | None] = [None] * len(self)
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            for i, connector in enumerate(self.connectors):
                if back[i] is None and connector.state.connections > before[i]:
                    back[i] = now
            missing = back.count(None)
            if not missing:
                return [t for t in back if t is not None]
            if now > deadline:
                raise AssertionError(f"{missing}/{len(self)} hosts not back within {timeout} s")
            await asyncio.sleep(0.005)

    def abort_all(self) -> int:
        """A network blip: every control channel's TCP connection aborted at once."""
        aborted = 0
        for connector in self.connectors:
            session = connector._session
            transport = getattr(getattr(session, "_transport", None), "websocket", None)
            tcp = getattr(transport, "transport", None)
            if tcp is not None:
                tcp.abort()
                aborted += 1
        return aborted

    async def stop(self, connectors: Sequence[Connector] | None = None) -> None:
        which = self.connectors if connectors is None else connectors
        await asyncio.gather(*(c.stop(timeout=1) for c in which))
        if connectors is None:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.pool.close()


# ---------------------------------------------------------------------- /health probe

_PROBE = r"""
import json, signal, socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
request = b"GET /health HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n"
latencies, refused, end = [], 0, time.monotonic() + seconds
try:
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            if answer.startswith(b"HTTP/1.1 200"):
                latencies.append(time.monotonic() - started)
        except ConnectionRefusedError:
            refused += 1
        except OSError:
            pass
        time.sleep(0.02)
finally:
    print(json.dumps({"latencies": latencies, "refused": refused}))
"""


@contextlib.asynccontextmanager
async def health_probe(port: int, seconds: float) -> AsyncIterator[dict[str, Any]]:
    """/health asked every 20 ms from a separate process; the result dict is filled in
    (``max``, ``count``) when the block ends (it waits for the probe to finish)."""
    result: dict[str, Any] = {}
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PROBE, str(port), str(seconds), stdout=asyncio.subprocess.PIPE
    )
    try:
        yield result
    finally:
        with contextlib.suppress(ProcessLookupError):
            probe.terminate()  # it prints what it measured and exits
        out, _ = await probe.communicate()
    data = json.loads(out)
    latencies = data["latencies"]
    result["count"] = len(latencies)
    result["max"] = max(latencies) if latencies else float("nan")


# ----------------------------------------------------------------------- one restart


@dataclass
class Restart:
    how: str
    hosts: int
    p99_from_ready: float
    max_from_ready: float
    p99_from_signal: float
    health_max: float
    health_probes: int
    listen_overflows: int
    upgraded_per_host: float
    refused_busy: int
    relay_cpu: float
    client_cpu: float  # this process (the hosts), over the same span as relay_cpu
    wall: float  # that span
    load: float  # the 1-minute load average when every host was back

    def rows(self) -> list[tuple[str, str, str]]:
        how, per_host = self.how, self.relay_cpu / max(1, self.hosts) * 1000
        health = f"{self.health_max * 1000:.0f} ms"
        return [
            (f"{how}: p99 back after the listener opened", f"{self.p99_from_ready:.2f} s",
             f"<= {TARGET_P99:g} s"),
            (f"{how}: last host back after it", f"{self.max_from_ready:.2f} s", ""),
            (f"{how}: p99 back after the signal", f"{self.p99_from_signal:.2f} s", ""),
            (f"{how}: slowest /health ({self.health_probes} probes)", health,
             f"<= {TARGET_HEALTH * 1000:g} ms"),
            (f"{how}: listen-queue overflows", str(self.listen_overflows), "0"),
            (f"{how}: control channels upgraded per host", f"{self.upgraded_per_host:.2f}",
             "1.00"),
            (f"{how}: connects refused while busy (503)", str(self.refused_busy), ""),
            (f"{how}: relay CPU for the herd", f"{self.relay_cpu:.2f} s",
             f"({per_host:.1f} ms/host)"),
            (f"{how}: the hosts' CPU (this process) meanwhile", f"{self.client_cpu:.2f} s",
             f"(of {self.wall:.2f} s: {self.client_cpu / max(self.wall, 1e-9):.0%} of a core)"),
            (f"{how}: load average (1 min) after it", f"{self.load:.1f}",
             f"({os.cpu_count()} CPUs)"),
        ]  # fmt: skip


async def restart(relay: RelayProcess, fleet: Fleet, signum: int, timeout: float) -> Restart:
    """Restart the relay with ``signum`` and wait until every host is back."""
    before = fleet.connections()
    overflows = listen_overflows()
    signalled = time.monotonic()
    async with health_probe(relay.port, seconds=timeout) as health:
        relay.signal(signum)
        await relay.wait_exit()
        relay.start()
        ready = await relay.wait_listening()
        cpu_at_ready = relay.cpu_seconds()  # its start (imports, migrations) is not the herd's
        client_at_ready = time.process_time()
        await relay.wait_ready()
        back = await fleet.wait_back(before, timeout)
        cpu = relay.cpu_seconds() - cpu_at_ready
        client_cpu = time.process_time() - client_at_ready
        wall = time.monotonic() - ready
        metrics = await relay.metrics()
    upgraded = metrics.get('agent_relay_host_connects_total{result="upgraded"}', 0.0)
    busy = metrics.get('agent_relay_host_connects_total{result="busy"}', 0.0)
    after_ready = [max(0.0, t - ready) for t in back]
    return Restart(
        how=signal.Signals(signum).name,
        hosts=len(fleet),
        p99_from_ready=percentile(after_ready, 0.99),
        max_from_ready=max(after_ready),
        p99_from_signal=percentile([t - signalled for t in back], 0.99),
        health_max=health["max"],
        health_probes=health["count"],
        listen_overflows=listen_overflows() - overflows,
        upgraded_per_host=upgraded / len(fleet),
        refused_busy=int(busy),
        relay_cpu=cpu,
        client_cpu=client_cpu,
        wall=wall,
        load=os.getloadavg()[0],
    )


def print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>10}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--timeout", type=float, default=120.0, help="per restart, seconds")
    args = parser.parse_args(argv)
    # 1,000 hosts' retry warnings on one stderr cost this process CPU the relay needs
    # to be measured fairly (each real host logs in its own process).
    logging.getLogger("agent_relay").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="agent-relay-herd-") as tmp:
        relay = RelayProcess(Path(tmp), database_url=args.database_url)
        token = relay.user_token()
        relay.start()
        await relay.wait_ready()
        fleet = Fleet(relay.url, token, args.hosts)
        started = time.monotonic()
        fleet.start()
        try:
            await fleet.wait_connected(args.timeout)
            first = time.monotonic() - started
            results = [
                await restart(relay, fleet, signal.SIGKILL, args.timeout),
                await restart(relay, fleet, signal.SIGTERM, args.timeout),
            ]
        finally:
            await fleet.stop()
            relay.stop()
        print(f"{args.hosts} hosts, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        rows = [("first connect of every host", f"{first:.2f} s", "")]
        for result in results:
            rows += result.rows()
        print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

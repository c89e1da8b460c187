"""End to end: the sample agent server reached directly, through agent-relay, and through
an OpenSSH reverse tunnel, all in one run against the same server process.

* direct: ``wrk``/``curl`` -> the sample server (``python -m agent_relay.demo.sample_server``);
* agent-relay: -> ``agent-relay server`` (SQLite) -> yamux over one WebSocket ->
  ``agent-relay host`` -> the sample server, each its own process; requests go to
  ``/v1/relay/h/{host}/s/{session}/...`` after ``POST /v1/relay/create/{host}``;
* ssh -R: -> a throwaway ``sshd`` on loopback -> SSH channel -> ``ssh -N -R`` -> the sample
  server (OpenSSH, the reference C implementation of a multiplexed reverse tunnel).

Measured: requests/s for a small JSON answer (``GET /api/whoami``) with 1 and 64
connections, p50/p99 latency with 1 connection and what each tunnel adds to it, a
streamed 100 MiB download (``GET /api/blob``), and the memory of the processes in the
middle with 1 idle host and with many: for agent-relay, the relay with 1,000 control
channels open (opened by a load process of ours, each its own ``machine_id``, with a real
token) and connector processes started side by side; for OpenSSH, every ``sshd`` and
``ssh`` process with 1 and N sessions. Needs ``wrk``, ``curl``, ``sshd`` and ``ssh``;
installs the Debian packages with apt-get when they are missing (as root).

    .venv/bin/python bench/e2e.py [--quick] [--seconds 5] [--hosts 1000] [--ssh-sessions 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import getpass
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SMALL_PATH = "/api/whoami"  # a small JSON answer, no database work
MIB = 1024 * 1024
GIB = 1024 * MIB
BLOB_PERIOD = 251  # /api/blob: byte k is k % 251
SIGNED = "agent-relay signed"
# Every path the request rounds interleave, in table order; the peers need
# scripts/bench-tools.sh (skipped in --quick when not built).
ALL_PATHS = ("direct", "ssh -R", "chisel", "frp", "rathole", "agent-relay", SIGNED)
PEERS = ("chisel", "frp", "rathole")
PEERS_BIN = (
    Path(
        os.environ.get("AGENT_RELAY_BENCH_PEERS") or Path.home() / ".cache/agent-relay/bench-peers"
    )
    / "bin"
)
PEER_BINARIES = {"chisel": ("chisel",), "frp": ("frps", "frpc"), "rathole": ("rathole",)}
LEVELS = (1, 16, 64, 256)  # wrk connections
CPU_LEVEL = 64  # CPU per request is reported at this concurrency
# The drop-in pairings, with ours+ours measured again beside them in the same rounds.
MIXED = ("ours+ours", "our relay + ref-like host", "ref-like relay + our connector")
REF_PEER = ROOT / "tests" / "interop" / "bin" / "ref-peer"  # tests/interop/build.sh
SSH_MEMORY_BUDGET = 6 * GIB  # the N of ssh sessions is capped to what fits in this
MIN_AVAILABLE = 3 * GIB  # and never leaves less than this free
SSH_BATCH = 50  # sessions opened at once (sshd MaxStartups is set above this)
TOOLS = {  # command -> the Debian package that has it
    "wrk": "wrk",
    "curl": "curl",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class BenchError(Exception):
    """Something the bench needs did not happen; the message says what."""


# ------------------------------------------------------------------ processes


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM if the bench dies, even by SIGKILL."""
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry))
    return children


def descendants(root: int) -> list[int]:
    children = _children_by_parent()
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _proc_kib(pid: int, path: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    return _proc_kib(pid, "status", "VmRSS")


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them."""
    return _proc_kib(pid, "smaps_rollup", "Pss")


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise BenchError("no MemAvailable in /proc/meminfo")


class Processes:
    """Every process the bench starts, stopped in reverse order at the end, whatever
    happens. The bench is a child subreaper, so what its children fork (sshd's
    per-connection processes) stays in its tree and is stopped too."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []
        _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def start(self, name: str, argv: list[str], *, pipe: bool = False) -> subprocess.Popen[bytes]:
        """Start ``argv``, its output to ``{name}.log``; ``pipe``: stdin and stdout are
        pipes to the bench."""
        with open(self.logs / f"{name}.log", "ab") as output:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe else output,
                stderr=output,
                preexec_fn=_die_with_parent,  # the bench starts no threads
                cwd=self.logs,
            )
        self.started.append((name, process))
        return process

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self, name: str, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            raise BenchError(
                f"{name} exited with status {process.returncode}:\n{self.log_tail(name)}"
            )

    def stop(self, processes: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        ids = {id(p) for p in processes}
        self.started = [(n, p) for n, p in self.started if id(p) not in ids]

    def stop_all(self) -> None:
        self.stop([p for _, p in reversed(self.started)])
        # Whatever is left in our tree (orphans reparented to us): TERM, then KILL.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = descendants(os.getpid())
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while left and time.monotonic() < deadline:
                _reap()
                left = [pid for pid in left if _alive(pid)]
                time.sleep(0.05)
        _reap()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ------------------------------------------------------------------ small helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def low_ports(start: int = 20000) -> Iterator[int]:
    """Free ports below the ephemeral range, so no client socket takes one meanwhile."""
    for port in range(start, 32000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        yield port


def wait_until(what: str, check: Callable[[], bool], timeout: float, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(poll)
    raise BenchError(f"timed out after {timeout:g} s waiting for {what}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def listening_ports() -> set[int]:
    """Ports in LISTEN state on this machine (IPv4), from /proc/net/tcp."""
    ports: set[int] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def http_json(
    method: str, url: str, token: str | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback http
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
        payload = json.loads(response.read())
    if not isinstance(payload, dict):
        raise BenchError(f"{method} {url}: expected a JSON object")
    return payload


def blob(offset: int, length: int) -> bytes:
    return bytes((offset + k) % BLOB_PERIOD for k in range(length))


def agent_relay_cli() -> str:
    path = Path(sys.executable).parent / "agent-relay"
    if not path.exists():
        raise BenchError(f"no {path}: run scripts/setup.sh first")
    return str(path)


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def ensure_tools(install: bool) -> dict[str, str]:
    missing = sorted({TOOLS[name] for name in TOOLS if find_tool(name) is None})
    if missing:
        if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise BenchError(
                f"bench/e2e.py needs {', '.join(missing)}: apt-get install -y {' '.join(missing)}"
            )
        print(
            f"bench/e2e.py: installing the missing Debian packages {' '.join(missing)} "
            "with apt-get (needed for the load generator and the ssh -R comparison)",
            file=sys.stderr,
            flush=True,
        )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        argv = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise BenchError(f"apt-get install {' '.join(missing)} failed:\n{done.stderr[-2000:]}")
    found = {name: find_tool(name) for name in TOOLS}
    absent = [name for name, path in found.items() if path is None]
    if absent:
        raise BenchError(f"still missing after install: {', '.join(absent)}")
    return {name: path for name, path in found.items() if path is not None}


# ------------------------------------------------------------------ the load


@dataclass
class WrkResult:
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int = 0  # non-2xx answers and socket errors (timeouts included)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, connections: int, seconds: int) -> WrkResult:
    # A 10 s timeout (wrk's default is 2 s): on a loaded machine a slow answer is a slow
    # answer, counted in the latency, not an error.
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
    if not rate or not count or len(percentiles) != 2:
        raise BenchError(f"wrk {url} failed:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in sockets.groups()) if sockets else 0
    )
    if errors and errors * 2 > int(count.group(1)):
        raise BenchError(f"wrk {url}: mostly errors:\n{out}")

    def millis(text: str) -> float:
        number, unit = re.split(r"(?<=\d)(?=[a-z])", text, maxsplit=1)
        return float(number) * _UNITS[unit]

    return WrkResult(
        float(rate.group(1)),
        millis(percentiles["50"]),
        millis(percentiles["99"]),
        int(count.group(1)),
        errors,
    )


def download_mb_per_s(url: str, size: int, repeats: int) -> float:
    """Median MB/s (10^6 bytes) of ``repeats`` streamed downloads by curl to /dev/null."""
    rates = []
    for _ in range(repeats):
        out = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "--max-time", "120", "-w",
             "%{http_code} %{size_download} %{time_total}", f"{url}?size={size}"],
            capture_output=True, text=True, timeout=130,
        )  # fmt: skip
        fields = out.stdout.split()
        if out.returncode != 0 or len(fields) != 3 or fields[:2] != ["200", str(size)]:
            raise BenchError(f"download from {url} failed: {out.stdout} {out.stderr}")
        rates.append(size / float(fields[2]) / 1e6)
    return statistics.median(rates)


def upload_mb_per_s(url: str, body: Path, repeats: int) -> float:
    """Median MB/s of ``repeats`` streamed uploads of ``body`` by curl (POST /api/blob
    hashes what it receives and answers its size)."""
    size = body.stat().st_size
    rates = []
    for _ in range(repeats):
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "120", "-H", "Content-Type: application/octet-stream",
             "-H", "Expect:", "--data-binary", f"@{body}", "-w", "\n%{http_code} %{time_total}",
             url],
            capture_output=True, text=True, timeout=130,
        )  # fmt: skip
        answer, _, tail = out.stdout.rpartition("\n")
        fields = tail.split()
        ok = out.returncode == 0 and len(fields) == 2 and fields[0] == "200"
        if not ok or json.loads(answer or "{}").get("bytes") != size:
            raise BenchError(f"upload to {url} failed: {out.stdout[-500:]} {out.stderr}")
        rates.append(size / float(fields[1]) / 1e6)
    return statistics.median(rates)


def check_content(base: str) -> None:
    """The JSON answer and a blob arrive intact over this path (before timing it)."""
    answer = http_json("GET", base + SMALL_PATH)
    if answer.get("path") != SMALL_PATH:
        raise BenchError(f"{base}{SMALL_PATH}: unexpected answer {answer}")
    size = MIB + 7
    with urllib.request.urlopen(f"{base}/api/blob?size={size}", timeout=30) as response:  # noqa: S310
        body = response.read()
    if body != blob(0, size):
        raise BenchError(f"{base}/api/blob: the bytes differ from the pattern")


# ------------------------------------------------------------------ the setups


@dataclass
class Setup:
    procs: Processes
    tmp: Path
    tools: dict[str, str]
    sample_port: int = 0
    relay_port: int = 0
    token: str = ""
    host_id: str = ""
    relay_base: str = ""  # .../v1/relay/h/{host}/s/{session}
    sshd_port: int = 0
    tunnel_port: int = 0
    sample: subprocess.Popen[bytes] | None = None
    relay: subprocess.Popen[bytes] | None = None
    connector: subprocess.Popen[bytes] | None = None
    sshd: subprocess.Popen[bytes] | None = None
    tunnel: subprocess.Popen[bytes] | None = None
    ports: Iterator[int] = field(default_factory=low_ports)
    # The peers: name -> (public side, host side) processes, and the port clients use.
    peers: dict[str, tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]] = field(
        default_factory=dict
    )
    peer_ports: dict[str, int] = field(default_factory=dict)
    # Signed mode: a connector that checks signatures, and the client's key store.
    signed_connector: subprocess.Popen[bytes] | None = None
    signed_base: str = ""
    signed_store: Path | None = None

    def base(self, path: str) -> str:
        if path == "direct":
            return f"http://127.0.0.1:{self.sample_port}"
        if path == "agent-relay":
            return self.relay_base
        if path == SIGNED:
            return self.signed_base
        if path in self.peer_ports:
            return f"http://127.0.0.1:{self.peer_ports[path]}"
        return f"http://127.0.0.1:{self.tunnel_port}"

    # -- the sample server

    def start_sample(self) -> None:
        self.sample_port = free_port()
        self.sample = self.procs.start(
            "sample-server",
            [sys.executable, "-m", "agent_relay.demo.sample_server",
             "--port", str(self.sample_port), "--database", str(self.tmp / "sample.sqlite3")],
        )  # fmt: skip
        wait_until(
            "the sample server",
            lambda: self._up("sample-server", self.sample, self.sample_port),
            30,
        )

    def _up(self, name: str, process: subprocess.Popen[bytes] | None, port: int) -> bool:
        assert process is not None
        self.procs.check_alive(name, process)
        return port_open(port)

    # -- agent-relay

    def start_relay(self) -> None:
        cli = agent_relay_cli()
        data = self.tmp / "relay"
        added = subprocess.run(
            [cli, "users", "add", "bench", "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if added.returncode != 0:
            raise BenchError(f"users add failed: {added.stderr}")
        issued = subprocess.run(
            [cli, "tokens", "issue", "bench", "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if issued.returncode != 0 or not issued.stdout.strip():
            raise BenchError(f"tokens issue failed: {issued.stderr}")
        self.token = issued.stdout.strip()
        token_file = self.tmp / "token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        self.relay_port = free_port()
        self.relay = self.procs.start(
            "relay",
            [cli, "server", "--listen", f"127.0.0.1:{self.relay_port}", "--data-dir", str(data)],
        )
        wait_until("the relay", lambda: self._up("relay", self.relay, self.relay_port), 30)

    def start_connector(self, index: int | str, *, signed: bool = False) -> subprocess.Popen[bytes]:
        name = f"connector-{index}"
        return self.procs.start(
            name,
            [agent_relay_cli(), "host",
             "--relay", f"http://127.0.0.1:{self.relay_port}",
             "--upstream", f"http://127.0.0.1:{self.sample_port}",
             "--name", f"bench-{index}", "--token-file", str(self.tmp / "token"),
             "--data-dir", str(self.tmp / name),
             # wrk and curl cannot sign requests: the signed path has its own connector
             # and load process (signed_load).
             *([] if signed else ["--allow-unsigned"])],
        )  # fmt: skip

    def connect_signed(self) -> None:
        """A second connector that checks every signature, and a client paired with it
        (pair-code + SPAKE2 through the relay), its keys in ``signed_store``."""
        import asyncio

        from agent_relay.client import RelayClient
        from agent_relay.client.keystore import KeyStore

        self.signed_connector = self.start_connector("signed", signed=True)
        host_id = self.wait_hosts({"bench-signed"}, 30)["bench-signed"]
        made = subprocess.run(
            [agent_relay_cli(), "host", "pair-code",
             "--data-dir", str(self.tmp / "connector-signed")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if made.returncode != 0 or not made.stdout.strip():
            raise BenchError(f"host pair-code failed: {made.stderr}")
        self.signed_store = self.tmp / "client"
        store = KeyStore(self.signed_store)
        relay_url = f"http://127.0.0.1:{self.relay_port}"
        pairing = asyncio.run(
            RelayClient.pair(relay_url, host_id, made.stdout.strip(), token=self.token, store=store)
        )
        self.signed_base = f"{relay_url}/v1/relay/h/{host_id}/s/{pairing.relay_session_id}"

    # -- the peers: chisel, frp, rathole (scripts/bench-tools.sh builds them)

    def start_peers(self, names: tuple[str, ...]) -> None:
        for name in names:
            control, port = next(self.ports), next(self.ports)
            public, host = getattr(self, "_start_" + name)(control, port)
            self.peers[name] = (public, host)
            self.peer_ports[name] = port
        for name in names:
            base = self.base(name)

            def answering(name: str = name, base: str = base) -> bool:
                for process in self.peers[name]:
                    self.procs.check_alive(name, process)
                return _answers(base)

            wait_until(f"the {name} tunnel", answering, 30, 0.1)

    def stop_peers(self) -> None:
        """The peers' processes, so that they do not count in what follows."""
        self.procs.stop([process for pair in self.peers.values() for process in pair])
        self.peers.clear()

    def _start_chisel(self, control: int, port: int) -> tuple[Any, Any]:
        chisel = str(PEERS_BIN / "chisel")
        public = self.procs.start(
            "chisel-server",
            [chisel, "server", "--host", "127.0.0.1", "--port", str(control), "--reverse"],
        )
        wait_until("chisel server", lambda: self._up("chisel-server", public, control), 30)
        host = self.procs.start(
            "chisel-client",
            [chisel, "client", f"http://127.0.0.1:{control}",
             f"R:127.0.0.1:{port}:127.0.0.1:{self.sample_port}"],
        )  # fmt: skip
        return public, host

    def _start_frp(self, control: int, port: int) -> tuple[Any, Any]:
        # frp's defaults: one TCP connection multiplexed with yamux (transport.tcpMux).
        server = self.tmp / "frps.toml"
        server.write_text(f'bindAddr = "127.0.0.1"\nbindPort = {control}\n')
        client = self.tmp / "frpc.toml"
        client.write_text(
            f'serverAddr = "127.0.0.1"\nserverPort = {control}\nloginFailExit = false\n\n'
            f'[[proxies]]\nname = "bench"\ntype = "tcp"\nlocalIP = "127.0.0.1"\n'
            f"localPort = {self.sample_port}\nremotePort = {port}\n"
        )
        public = self.procs.start("frps", [str(PEERS_BIN / "frps"), "-c", str(server)])
        wait_until("frps", lambda: self._up("frps", public, control), 30)
        host = self.procs.start("frpc", [str(PEERS_BIN / "frpc"), "-c", str(client)])
        return public, host

    def _start_rathole(self, control: int, port: int) -> tuple[Any, Any]:
        # rathole's defaults: plain TCP, one data connection per visitor connection.
        server = self.tmp / "rathole-server.toml"
        server.write_text(
            f'[server]\nbind_addr = "127.0.0.1:{control}"\ndefault_token = "bench"\n\n'
            f'[server.services.bench]\nbind_addr = "127.0.0.1:{port}"\n'
        )
        client = self.tmp / "rathole-client.toml"
        client.write_text(
            f'[client]\nremote_addr = "127.0.0.1:{control}"\ndefault_token = "bench"\n\n'
            f'[client.services.bench]\nlocal_addr = "127.0.0.1:{self.sample_port}"\n'
        )
        rathole = str(PEERS_BIN / "rathole")
        public = self.procs.start("rathole-server", [rathole, "--server", str(server)])
        wait_until("rathole server", lambda: self._up("rathole-server", public, control), 30)
        host = self.procs.start("rathole-client", [rathole, "--client", str(client)])
        return public, host

    def hosts_online(self) -> dict[str, str]:
        """name -> host id, of this user's hosts the relay has a live tunnel for."""
        url = f"http://127.0.0.1:{self.relay_port}/v1/hosts"
        hosts = http_json("GET", url, self.token, timeout=30)["hosts"]
        return {h["name"]: h["id"] for h in hosts if h["online"]}

    def wait_hosts(self, names: set[str], timeout: float) -> dict[str, str]:
        online: dict[str, str] = {}

        def check() -> bool:
            nonlocal online
            for name, process in self.procs.started:
                if name.startswith("connector-") or name == "relay":
                    self.procs.check_alive(name, process)
            online = self.hosts_online()
            return names <= online.keys()

        wait_until(f"{len(names)} connector(s) to be online at the relay", check, timeout, 0.2)
        return online

    def connect_host(self) -> None:
        self.connector = self.start_connector(0)
        self.host_id = self.wait_hosts({"bench-0"}, 30)["bench-0"]
        created = http_json(
            "POST", f"http://127.0.0.1:{self.relay_port}/v1/relay/create/{self.host_id}", self.token
        )
        session = created["session_id"]
        self.relay_base = (
            f"http://127.0.0.1:{self.relay_port}/v1/relay/h/{self.host_id}/s/{session}"
        )

    # -- the mixed pairings (drop-in): reference-like peers from tests/interop/refpeer

    def start_mixed(self) -> dict[str, str]:
        """Our relay + the reference-like host, and the reference-like relay + our
        connector, both in front of the same sample server; pairing -> base URL."""
        from datetime import timedelta
        from uuid import uuid4

        from agent_relay.relay.auth import JwtSecret, mint_token

        bases = {"ours+ours": self.relay_base}
        relay_url = f"http://127.0.0.1:{self.relay_port}"
        self.procs.start(
            "ref-host",
            [str(REF_PEER), "host", "--relay", relay_url, "--token-file", str(self.tmp / "token"),
             "--machine-id", "bench-ref-host", "--name", "bench-ref-host",
             "--upstream", f"127.0.0.1:{self.sample_port}"],
        )  # fmt: skip
        host_id = self.wait_hosts({"bench-ref-host"}, 30)["bench-ref-host"]
        session = http_json("POST", f"{relay_url}/v1/relay/create/{host_id}", self.token)
        bases[MIXED[1]] = f"{relay_url}/v1/relay/h/{host_id}/s/{session['session_id']}"

        secret = JwtSecret.generate()
        token = mint_token(secret, uuid4(), uuid4(), timedelta(hours=2))
        token_file = self.tmp / "ref-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        ref_port = free_port()
        os.environ["VIBEKANBAN_REMOTE_JWT_SECRET"] = secret.to_base64()  # for the child
        ref_relay = self.procs.start(
            "ref-relay", [str(REF_PEER), "relay", "--listen", f"127.0.0.1:{ref_port}"]
        )
        wait_until(
            "the reference-like relay", lambda: self._up("ref-relay", ref_relay, ref_port), 30
        )
        ref_url = f"http://127.0.0.1:{ref_port}"
        self.procs.start(
            "connector-mixed",
            [agent_relay_cli(), "host", "--relay", ref_url,
             "--upstream", f"http://127.0.0.1:{self.sample_port}",
             "--name", "bench-mixed", "--token-file", str(token_file),
             "--data-dir", str(self.tmp / "connector-mixed"), "--allow-unsigned"],
        )  # fmt: skip
        hosts: dict[str, Any] = {}

        def connected() -> bool:
            nonlocal hosts
            hosts = http_json("GET", f"{ref_url}/_test/hosts")
            return bool(hosts)

        wait_until("our connector at the reference-like relay", connected, 30, 0.2)
        ref_host = str(next(iter(hosts.values())))
        # The connector is online at the relay a moment after its WebSocket opens.
        session = http_json("POST", f"{ref_url}/v1/relay/create/{ref_host}", token)
        bases[MIXED[2]] = f"{ref_url}/v1/relay/h/{ref_host}/s/{session['session_id']}"
        for pairing, base in bases.items():
            wait_until(f"{pairing} to answer", functools.partial(_answers, base), 30, 0.2)
            check_content(base)
        return bases

    def stop_mixed(self) -> None:
        """The mixed pairings' processes, so that they do not count in what follows."""
        names = {"ref-host", "ref-relay", "connector-mixed"}
        self.procs.stop([p for name, p in self.procs.started if name in names])

    # -- OpenSSH

    def start_sshd(self) -> None:
        keys = self.tmp / "ssh"
        keys.mkdir(mode=0o700)
        for key in ("host_key", "client_key"):
            subprocess.run(
                [self.tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-f", str(keys / key)],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
        (keys / "authorized_keys").write_text((keys / "client_key.pub").read_text())
        (keys / "authorized_keys").chmod(0o600)
        if os.geteuid() == 0:  # sshd refuses to start without its privsep directory
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.sshd_port = next(self.ports)
        config = keys / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.sshd_port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {keys / 'host_key'}",
                    f"AuthorizedKeysFile {keys / 'authorized_keys'}",
                    "PidFile none",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "AllowTcpForwarding remote",
                    "AllowAgentForwarding no",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "UseDNS no",
                    f"MaxStartups {SSH_BATCH * 4}:30:{SSH_BATCH * 8}",
                    "LoginGraceTime 60",
                    "LogLevel ERROR",
                    f"AllowUsers {getpass.getuser()}",
                    "",
                ]
            )
        )
        sshd = self.tools["sshd"]
        checked = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise BenchError(f"sshd rejects the bench's config: {checked.stderr}")
        self.sshd = self.procs.start("sshd", [sshd, "-D", "-e", "-f", str(config)])
        wait_until("sshd", lambda: self._up("sshd", self.sshd, self.sshd_port), 30)

    def ssh_reverse(self, remote_port: int, name: str) -> subprocess.Popen[bytes]:
        keys = self.tmp / "ssh"
        return self.procs.start(
            name,
            [self.tools["ssh"], "-N", "-F", "/dev/null",
             "-R", f"127.0.0.1:{remote_port}:127.0.0.1:{self.sample_port}",
             "-p", str(self.sshd_port), "-i", str(keys / "client_key"),
             "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
             f"{getpass.getuser()}@127.0.0.1"],
        )  # fmt: skip

    def open_tunnel(self) -> None:
        self.tunnel_port = next(self.ports)
        self.tunnel = self.ssh_reverse(self.tunnel_port, "ssh-tunnel")
        tunnel = self.tunnel

        def listening() -> bool:
            self.procs.check_alive("ssh-tunnel", tunnel)
            return self.tunnel_port in listening_ports()

        wait_until("the ssh -R tunnel", listening, 30)

    def middle_processes(self, path: str) -> tuple[list[int], list[int]]:
        """The processes between client and sample server on ``path``: the public side
        (relay, sshd) and the host side (connector, ssh)."""
        if path == "agent-relay":
            assert self.relay is not None
            assert self.connector is not None
            return [self.relay.pid], [self.connector.pid]
        if path == SIGNED:
            assert self.relay is not None
            assert self.signed_connector is not None
            return [self.relay.pid], [self.signed_connector.pid]
        if path == "ssh -R":
            assert self.tunnel is not None
            return self.sshd_processes(), [self.tunnel.pid]
        if path in self.peers:
            public, host = self.peers[path]
            return [public.pid], [host.pid]
        return [], []

    def sshd_processes(self) -> list[int]:
        assert self.sshd is not None
        return [self.sshd.pid, *descendants(self.sshd.pid)]


# ------------------------------------------------------------------ memory phases


def mib(kib: float) -> float:
    return kib / 1024


@dataclass
class Memory:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # what, one, many, note

    def add(self, what: str, one: str, many: str, note: str) -> None:
        self.rows.append((what, one, many, note))


def hold_hosts_process(setup: Setup, count: int) -> tuple[subprocess.Popen[bytes], int, int]:
    """A load process of ours holding ``count`` idle host control channels to the relay;
    returns it once all are open, how many it opened and its RSS (KiB) before opening."""
    holder = setup.procs.start(
        "hold-hosts",
        [sys.executable, __file__, "--hold-hosts", str(count),
         "--relay-url", f"http://127.0.0.1:{setup.relay_port}",
         "--token-file", str(setup.tmp / "token")],
        pipe=True,
    )  # fmt: skip
    assert holder.stdout is not None
    deadline = time.monotonic() + 60 + count * 0.1
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"the load process did not open {count} control channels in time")
        ready, _, _ = select.select([holder.stdout], [], [], remaining)
        if ready:
            chunk = os.read(holder.stdout.fileno(), 1)
            if not chunk:
                raise BenchError(f"the load process failed:\n{setup.procs.log_tail('hold-hosts')}")
            line += chunk
    words = line.decode().split()
    if len(words) != 3 or words[0] != "ready":
        raise BenchError(f"the load process said {line!r}")
    return holder, int(words[1]), int(words[2])


def measure_relay_memory(
    setup: Setup, args: argparse.Namespace, memory: Memory, idle: dict[str, int]
) -> None:
    assert setup.relay is not None
    assert setup.connector is not None
    relay_pid, connector_pid = setup.relay.pid, setup.connector.pid
    after_load = rss_kib(relay_pid), rss_kib(connector_pid)

    # Many hosts at the relay: the connector plus control channels from one load process.
    holder, held, holder_base = hold_hosts_process(setup, args.hosts - 1)
    online = len(setup.hosts_online())
    if online < args.hosts:
        raise BenchError(f"the relay lists {online} hosts online, expected {args.hosts}")
    time.sleep(1)  # let the relay settle after the burst of connections
    relay_many = rss_kib(relay_pid)
    holder_rss = rss_kib(holder.pid)
    setup.procs.stop([holder])
    per_host = (relay_many - after_load[0]) / max(1, held)
    memory.add(
        "agent-relay server (relay), RSS",
        f"{mib(idle['relay']):.1f}",
        f"{mib(relay_many):.1f}",
        f"{args.hosts:,} hosts online = the connector + {held:,} control channels (WebSocket + "
        f"yamux, each its own machine_id, real token) from one load process; "
        f"{per_host:.0f} KiB per extra host; {mib(after_load[0]):.1f} MiB after the load tests",
    )
    memory.add(
        "load process holding the control channels, RSS",
        "",
        f"{mib(holder_rss):.1f}",
        f"client side of {held:,} idle yamux sessions in one asyncio process "
        f"(our transport + mux, no upstream pools): {mib(holder_base):.1f} MiB before the "
        f"first, then {(holder_rss - holder_base) / max(1, held):.0f} KiB per host",
    )

    # Connector processes side by side, each its own host.
    extra = [setup.start_connector(i) for i in range(1, args.connectors)]
    names = {f"bench-{i}" for i in range(args.connectors)}
    setup.wait_hosts(names, 30 + 3 * args.connectors)
    time.sleep(1)
    sizes = [rss_kib(setup.connector.pid)] + [rss_kib(p.pid) for p in extra]
    setup.procs.stop(extra)
    memory.add(
        "agent-relay host (connector), RSS",
        f"{mib(idle['connector']):.1f}",
        f"{mib(sum(sizes)):.1f}",
        f"1 host per process; many = {args.connectors} processes side by side, "
        f"{mib(statistics.mean(sizes)):.1f} MiB each on average "
        f"(min {mib(min(sizes)):.1f}, max {mib(max(sizes)):.1f}); one process after the load "
        f"tests: {mib(after_load[1]):.1f} MiB",
    )


def open_ssh_sessions(setup: Setup, ports: list[int]) -> list[subprocess.Popen[bytes]]:
    """One ``ssh -N -R`` per port, returned once sshd listens on every one."""
    started = [setup.ssh_reverse(port, "ssh-many") for port in ports]
    clients = list(started)  # registered with setup.procs, stopped by it on any error

    def all_listening() -> bool:
        for process in clients:
            if process.poll() is not None:
                log = setup.procs.log_tail("ssh-many")
                raise BenchError(f"an ssh -R session exited ({process.returncode}):\n{log}")
        return set(ports) <= listening_ports()

    wait_until(f"{len(ports)} more ssh -R sessions", all_listening, 60, 0.1)
    return started


def measure_ssh_memory(
    setup: Setup, args: argparse.Namespace, memory: Memory, idle: dict[str, int]
) -> None:
    assert setup.tunnel is not None
    sshd_after_load = sum(rss_kib(pid) for pid in setup.sshd_processes())
    clients: list[subprocess.Popen[bytes]] = [setup.tunnel]
    target = args.ssh_sessions
    cap_reason = ""
    while len(clients) < target:
        if mem_available() < MIN_AVAILABLE:
            cap_reason = f"stopped at {len(clients)}: less than {MIN_AVAILABLE // GIB} GiB free"
            break
        batch = [next(setup.ports) for _ in range(min(SSH_BATCH, target - len(clients)))]
        clients.extend(open_ssh_sessions(setup, batch))
        # Cap N to what fits the budget, from the proportional size of each session so far.
        used = sum(pss_kib(p) for p in setup.sshd_processes()) + sum(
            pss_kib(c.pid) for c in clients
        )
        per_session = used * 1024 / len(clients)
        fits = int(SSH_MEMORY_BUDGET // per_session)
        if fits < target:
            target = max(len(clients), fits)
            cap_reason = f"capped at {target:,} to stay within {SSH_MEMORY_BUDGET // GIB} GiB"
    time.sleep(1)
    count = len(clients)
    sshd_pids = setup.sshd_processes()
    sshd_rss = sum(rss_kib(pid) for pid in sshd_pids)
    sshd_pss = sum(pss_kib(pid) for pid in sshd_pids)
    ssh_rss = sum(rss_kib(c.pid) for c in clients)
    ssh_pss = sum(pss_kib(c.pid) for c in clients)
    setup.procs.stop(clients[1:])
    note_n = f"N = {count:,} sessions" + (f" ({cap_reason})" if cap_reason else "")
    memory.add(
        "sshd, all processes, RSS sum",
        f"{mib(idle['sshd']):.1f}",
        f"{mib(sshd_rss):.1f}",
        f"{note_n}; {len(sshd_pids)} sshd processes (the listener + per-session ones); "
        f"{(sshd_rss - sshd_after_load) / max(1, count - 1):.0f} KiB per extra session; "
        f"{mib(sshd_after_load):.1f} MiB after the load tests",
    )
    memory.add(
        "sshd, all processes, PSS sum",
        f"{mib(idle['sshd_pss']):.1f}",
        f"{mib(sshd_pss):.1f}",
        "shared pages counted once: the memory they really take",
    )
    memory.add(
        "ssh clients (ssh -N -R), RSS sum",
        f"{mib(idle['ssh']):.1f}",
        f"{mib(ssh_rss):.1f}",
        f"one process per session; {ssh_rss / count:.0f} KiB each",
    )
    memory.add(
        "ssh clients (ssh -N -R), PSS sum",
        f"{mib(idle['ssh_pss']):.1f}",
        f"{mib(ssh_pss):.1f}",
        f"{ssh_pss / count:.0f} KiB each",
    )


# ------------------------------------------------------------------ the run


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "—"


def measure_requests(
    setup: Setup, paths: tuple[str, ...], args: argparse.Namespace, progress: Callable[..., None]
) -> dict[str, dict[str, float]]:
    """wrk (the signed path: our signing load process) against each path at each level,
    in ``args.rounds`` rounds that interleave the paths (in a rotating order), so that
    noise from a busy machine falls on all of them. Each figure is the median over the
    rounds, and so is each ratio to direct, taken within its round."""
    assert setup.sample is not None
    samples: dict[str, dict[str, list[float]]] = {path: {} for path in paths}
    for round_ in range(args.rounds):
        for connections in LEVELS:
            order = paths[round_ % len(paths) :] + paths[: round_ % len(paths)]
            in_round: dict[str, dict[str, float]] = {}
            for path in order:
                if args.warmup and round_ == 0:
                    load(setup, path, connections, args.warmup)
                public, host = setup.middle_processes(path)
                groups = {"cpu_public": public, "cpu_host": host, "cpu_sample": [setup.sample.pid]}
                before = {key: cpu_seconds(pids) for key, pids in groups.items()}
                result = load(setup, path, connections, args.seconds)
                figures = {
                    f"rate{connections}": result.rate,
                    f"p50_{connections}": result.p50_ms,
                    f"p99_{connections}": result.p99_ms,
                    f"errors{connections}": result.errors,
                }
                for key, pids in groups.items():
                    spent = cpu_seconds(pids) - before[key]
                    figures[f"{key}_{connections}"] = spent / max(1, result.requests) * 1e6
                in_round[path] = figures
                progress(f"round {round_ + 1} {path} c{connections}: {result}", file=sys.stderr)
            direct = in_round["direct"]
            for path, figures in in_round.items():
                for key in (f"rate{connections}", f"p50_{connections}", f"p99_{connections}"):
                    figures["ratio_" + key] = figures[key] / direct[key] if direct[key] else 0.0
                for key, value in figures.items():
                    samples[path].setdefault(key, []).append(value)
            progress(f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return {
        path: {key: statistics.median(values) for key, values in per_path.items()}
        for path, per_path in samples.items()
    }


def load(setup: Setup, path: str, connections: int, seconds: int) -> WrkResult:
    if path == SIGNED:
        return signed_load(setup, connections, seconds)
    return wrk(setup.base(path) + SMALL_PATH, connections, seconds)


def signed_load(setup: Setup, connections: int, seconds: int) -> WrkResult:
    """``connections`` concurrent signed GETs in a loop for ``seconds``, from a load
    process of ours (RelayClient: signs each request, checks each answer's signature),
    as wrk would report them."""
    assert setup.signed_store is not None
    done = subprocess.run(
        [sys.executable, __file__, "--signed-load", str(connections), "--seconds", str(seconds),
         "--store", str(setup.signed_store), "--relay-url", f"http://127.0.0.1:{setup.relay_port}",
         "--token-file", str(setup.tmp / "token")],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"the signed load process failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout)
    return WrkResult(figures["rate"], figures["p50_ms"], figures["p99_ms"], figures["requests"])


def run_signed_load(
    store_dir: Path, relay_url: str, token_file: Path, connections: int, seconds: int
) -> None:
    """In the load process: print requests, rate and latency percentiles as JSON."""
    import asyncio

    import httpx

    from agent_relay.client import RelayClient
    from agent_relay.client.keystore import KeyStore

    store = KeyStore(store_dir)
    pairing = store.find(relay_url, None)
    token = token_file.read_text().strip()

    async def main() -> None:
        async with RelayClient(pairing, token=token, store=store) as client:
            # httpx keeps only 20 idle connections by default: every connection stays
            # open, as wrk's do, so that connection churn is not what is measured.
            await client._http.aclose()
            pool = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
            client._http = httpx.AsyncClient(timeout=60, limits=pool, trust_env=False)
            latencies: list[float] = []
            await client.request("GET", SMALL_PATH)  # the connection pool warmed
            started = time.perf_counter()
            deadline = started + seconds

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    sent = time.perf_counter()
                    response, _ = await client.request("GET", SMALL_PATH)
                    if response.status != 200:
                        raise BenchError(f"signed GET {SMALL_PATH}: {response.status}")
                    latencies.append(time.perf_counter() - sent)

            await asyncio.gather(*(worker() for _ in range(connections)))
            took = time.perf_counter() - started
        latencies.sort()
        print(
            json.dumps(
                {
                    "requests": len(latencies),
                    "rate": len(latencies) / took,
                    "p50_ms": latencies[len(latencies) // 2] * 1e3,
                    "p99_ms": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] * 1e3,
                }
            )
        )

    asyncio.run(main())


def _answers(base: str) -> bool:
    try:
        http_json("GET", base + SMALL_PATH, timeout=2)
    except (OSError, ValueError, BenchError):
        return False
    return True


def measure_mixed(
    bases: dict[str, str], args: argparse.Namespace, progress: Callable[..., None]
) -> dict[str, dict[str, float]]:
    """wrk c1 and c64 on each pairing, rounds interleaved as in measure_requests."""
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in MIXED}
    for round_ in range(args.rounds):
        for connections in (1, 64):
            order = MIXED[round_ % len(MIXED) :] + MIXED[: round_ % len(MIXED)]
            for name in order:
                url = bases[name] + SMALL_PATH
                if args.warmup and round_ == 0:
                    wrk(url, connections, args.warmup)
                result = wrk(url, connections, args.seconds)
                figures = {f"rate{connections}": result.rate}
                if connections == 1:
                    figures.update(p50=result.p50_ms, p99=result.p99_ms)
                for key, value in figures.items():
                    samples[name].setdefault(key, []).append(value)
                progress(f"round {round_ + 1} {name} c{connections}: {result}", file=sys.stderr)
    return {
        name: {key: statistics.median(values) for key, values in per_name.items()}
        for name, per_name in samples.items()
    }


def mixed_table(mixed: dict[str, dict[str, float]] | None) -> list[str]:
    if mixed is None:
        return ["", f"Mixed pairings: skipped (no {REF_PEER}; run tests/interop/build.sh)."]
    lines = [
        "",
        "Drop-in pairings (reference-like peers from tests/interop/refpeer: Nagle on, one "
        "WebSocket message per yamux frame), same rounds as ours+ours:",
        "",
        f"| metric | {' | '.join(MIXED)} |",
        "|---|" + "---:|" * len(MIXED),
    ]
    rows = [
        ("requests/s, 1 connection", "rate1", "{:.0f}"),
        ("requests/s, 64 connections", "rate64", "{:.0f}"),
        ("latency p50, 1 connection (ms)", "p50", "{:.3f}"),
        ("latency p99, 1 connection (ms)", "p99", "{:.3f}"),
    ]
    for label, key, fmt in rows:
        lines.append(f"| {label} | {' | '.join(fmt.format(mixed[n][key]) for n in MIXED)} |")
    return lines


def run(args: argparse.Namespace) -> str:
    tools = ensure_tools(not args.no_install)
    tmp = Path(tempfile.mkdtemp(prefix="agent-relay-e2e-"))
    procs = Processes(tmp)
    setup = Setup(procs, tmp, tools)
    try:
        return _run(setup, args)
    except BenchError as exc:
        raise BenchError(f"{exc}\n(logs in {tmp})") from None
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        if not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)


def available_paths(quick: bool, only: str | None) -> tuple[str, ...]:
    """Every path (or those ``only`` names, and direct), less the peers not built
    (allowed in --quick only)."""
    chosen = {"direct", *only.split(",")} if only else set(ALL_PATHS)
    if unknown := chosen - set(ALL_PATHS):
        raise BenchError(f"--paths: unknown {', '.join(sorted(unknown))}")
    missing = [
        name
        for name in PEERS
        if name in chosen
        and not all((PEERS_BIN / binary).exists() for binary in PEER_BINARIES[name])
    ]
    if missing and not quick:
        raise BenchError(
            f"{', '.join(missing)} not built in {PEERS_BIN}: run scripts/bench-tools.sh"
        )
    return tuple(path for path in ALL_PATHS if path in chosen and path not in missing)


def _run(setup: Setup, args: argparse.Namespace) -> str:
    started = time.monotonic()
    load_before = os.getloadavg()
    progress = print if args.verbose else (lambda *_a, **_k: None)
    paths = available_paths(args.quick, args.paths)
    setup.start_sample()
    setup.start_relay()
    setup.connect_host()
    if SIGNED in paths:
        setup.connect_signed()
    setup.start_sshd()
    setup.open_tunnel()
    setup.start_peers(tuple(path for path in PEERS if path in paths))
    unsigned = tuple(path for path in paths if path != SIGNED)
    for path in unsigned:
        check_content(setup.base(path))
    time.sleep(0.5)
    assert setup.relay is not None
    assert setup.connector is not None
    assert setup.tunnel is not None
    assert setup.sample is not None
    idle = {
        "relay": rss_kib(setup.relay.pid),
        "connector": rss_kib(setup.connector.pid),
        "sshd": sum(rss_kib(pid) for pid in setup.sshd_processes()),
        "sshd_pss": sum(pss_kib(pid) for pid in setup.sshd_processes()),
        "ssh": rss_kib(setup.tunnel.pid),
        "ssh_pss": pss_kib(setup.tunnel.pid),
        "sample": rss_kib(setup.sample.pid),
    }
    idle_rss: dict[str, dict[str, float]] = {}
    for path in paths:
        public, host = setup.middle_processes(path)
        idle_rss[path] = {
            "rss_public": sum(rss_kib(pid) for pid in public),
            "rss_host": sum(rss_kib(pid) for pid in host),
        }
    progress(
        f"ready in {time.monotonic() - started:.1f} s; idle RSS (KiB): {idle}", file=sys.stderr
    )

    results = measure_requests(setup, paths, args, progress)
    size = args.download_mib * MIB
    upload = setup.tmp / "upload.bin"
    with open(upload, "wb") as out:
        for offset in range(0, size, MIB):
            out.write(blob(offset, min(MIB, size - offset)))
    for path in paths:
        results[path].update(idle_rss[path])
        if path == SIGNED:
            continue  # curl cannot sign: bench/trust.py has the per-byte cost of signing
        url = setup.base(path) + "/api/blob"
        results[path]["download"] = download_mb_per_s(url, size, args.repeats)
        results[path]["upload"] = upload_mb_per_s(url, upload, args.repeats)
        progress(
            f"{path}: download {results[path]['download']:.0f} MB/s, "
            f"upload {results[path]['upload']:.0f} MB/s",
            file=sys.stderr,
        )
    for path in paths:  # bulk ratios: the transfers ran one after the other, not interleaved
        for key in ("download", "upload"):
            if key in results[path]:
                results[path]["ratio_" + key] = results[path][key] / results["direct"][key]
    upload.unlink()
    setup.stop_peers()

    if args.requests_only:
        memory = Memory()
        return table(results, paths, memory, args, time.monotonic() - started, load_before)
    mixed = None
    if args.mixed and REF_PEER.exists():
        try:
            mixed = measure_mixed(setup.start_mixed(), args, progress)
        finally:
            setup.stop_mixed()
    memory = Memory()
    memory.add(
        "sample agent server (reference), RSS",
        f"{mib(idle['sample']):.1f}",
        "",
        "the upstream of every path",
    )
    measure_relay_memory(setup, args, memory, idle)
    progress("relay memory done", file=sys.stderr)
    measure_ssh_memory(setup, args, memory, idle)
    behind_ingress = measure_behind_ingress(setup, args)
    took = time.monotonic() - started
    report = table(results, paths, memory, args, took, load_before) + behind_ingress
    return report + "\n" + "\n".join(mixed_table(mixed)) if args.mixed else report


def table(
    results: dict[str, dict[str, float]],
    paths: tuple[str, ...],
    memory: Memory,
    args: argparse.Namespace,
    took: float,
    load_before: tuple[float, float, float],
) -> str:
    load_after = os.getloadavg()
    skipped = [path for path in ALL_PATHS if path not in paths and not args.paths]
    lines = [
        f"bench/e2e.py{' --quick' if args.quick else ''}: the sample agent server direct and "
        "through each tunnel, on loopback "
        f"({os.cpu_count()} CPUs; load average {load_before[0]:.1f} at the start, "
        f"{load_after[0]:.1f} at the end (1 min), {load_after[1]:.1f} (5 min); {took:.0f} s)",
        f"wrk -t1, {args.seconds} s per case and round after {args.warmup} s warm-up, median of "
        f"{args.rounds} rounds with the paths interleaved, GET {SMALL_PATH} (small JSON). "
        f"{SIGNED}: a connector that checks signatures, driven by a load process of ours "
        "(RelayClient: signs each request and checks each answer; it, not wrk, sets the pace). "
        "Ratios (×) are to direct in the same round (median over rounds). Transfers: GET and "
        f"POST /api/blob, {args.download_mib} MiB streamed by curl, median of {args.repeats}, "
        "one path after the other. CPU: user + system time of the process(es) during the "
        "run / requests (sshd: all its processes).",
        *(
            [f"Not run: {', '.join(skipped)} (not built: scripts/bench-tools.sh)."]
            if skipped
            else []
        ),
        "",
        f"| metric | {' | '.join(paths)} |",
        "|---|" + "---:|" * len(paths),
    ]

    def cell(path: str, key: str, fmt: str, with_ratio: bool) -> str:
        figures = results[path]
        if key not in figures:
            return "—"
        text = fmt.format(figures[key])
        ratio_key = "ratio_" + key
        if with_ratio and path != "direct" and ratio_key in figures:
            text += f" ({figures[ratio_key]:.2f}×)"
        return text

    rows: list[tuple[str, str, str, bool, bool]] = []  # label, key, format, ratio, middle only
    for level in LEVELS:
        rows.append((f"requests/s, c{level}", f"rate{level}", "{:.0f}", True, False))
    rows.append(("errors at c256 (non-2xx, socket)", "errors256", "{:.0f}", False, False))
    for level in (1, CPU_LEVEL):
        rows.append((f"latency p50, c{level} (ms)", f"p50_{level}", "{:.2f}", True, False))
        rows.append((f"latency p99, c{level} (ms)", f"p99_{level}", "{:.2f}", True, False))
    for level in (CPU_LEVEL, 256):
        rows += [
            (
                f"CPU µs/request, c{level}: public side",
                f"cpu_public_{level}",
                "{:.0f}",
                False,
                True,
            ),
            (f"CPU µs/request, c{level}: host side", f"cpu_host_{level}", "{:.0f}", False, True),
        ]
    rows.append((f"CPU µs/request, c{CPU_LEVEL}: sample server", f"cpu_sample_{CPU_LEVEL}",
                 "{:.0f}", False, False))  # fmt: skip
    rows += [
        (f"{args.download_mib} MiB download (MB/s)", "download", "{:.0f}", True, False),
        (f"{args.download_mib} MiB upload (MB/s)", "upload", "{:.0f}", True, False),
        ("idle RSS, public side (MiB)", "rss_public", "{:.1f}", False, True),
        ("idle RSS, host side (MiB)", "rss_host", "{:.1f}", False, True),
    ]
    for path in paths:
        for key in ("rss_public", "rss_host"):
            results[path][key] = mib(results[path][key])
    for label, key, fmt, with_ratio, middle_only in rows:
        cells = [
            "—" if middle_only and path == "direct" else cell(path, key, fmt, with_ratio)
            for path in paths
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += [
        "",
        "Public side: relay / sshd / chisel server / frps / rathole server; host side: "
        "connector / ssh / chisel client / frpc / rathole client. Idle RSS: before the load.",
        "",
        "Memory, MiB (RSS = VmRSS from /proc; PSS counts pages shared between processes "
        "once). 1 idle host / session: connected and checked once, before the load tests.",
        "",
        "| process | 1 idle host / session | many idle hosts / sessions | what was measured |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {what} | {one} | {many} | {note} |" for what, one, many, note in memory.rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ behind the ingress


def measure_behind_ingress(setup: Setup, args: argparse.Namespace) -> str:
    """The agent-relay path again, behind Caddy terminating TLS (a throwaway CA) with the
    routes generated from deploy/traefik/ingressroute.yaml, as tests/integration/test_ingress.py
    runs them: what the seed's ingress hop costs. Returns the table's rows."""
    from tests.support.caddy import GLOBAL_OPTIONS, find_caddy
    from tests.support.ingress import caddy_routes, load_ingress
    from tests.support.tlsca import make_certificates

    certificates = make_certificates(setup.tmp / "tls")
    port = free_port()
    routes = caddy_routes(
        load_ingress(),
        upstreams={8082: f"127.0.0.1:{setup.relay_port}", 8081: f"127.0.0.1:{free_port()}"},
        auth=f"127.0.0.1:{free_port()}",  # the catch-all's login, not measured here
    )
    caddyfile = setup.tmp / "Caddyfile"
    options = GLOBAL_OPTIONS.format(
        http_port=free_port(), https_port=port, state=setup.tmp / "caddy-state"
    )
    caddyfile.write_text(
        f"{options}https://127.0.0.1:{port} {{\n\ttls {certificates.cert} {certificates.key}\n"
        f"{routes}\n}}\n"
    )
    try:
        caddy_path = find_caddy()  # AGENT_RELAY_CADDY, or on PATH (scripts/caddy.sh)
    except AssertionError as exc:
        raise BenchError(str(exc)) from None
    caddy = setup.procs.start(
        "caddy", [caddy_path, "run", "--adapter", "caddyfile", "--config", str(caddyfile)]
    )
    base = setup.relay_base.replace(
        f"http://127.0.0.1:{setup.relay_port}", f"https://127.0.0.1:{port}"
    )
    previous = os.environ.get("CURL_CA_BUNDLE")
    os.environ["CURL_CA_BUNDLE"] = str(certificates.ca)  # curl trusts the throwaway CA
    try:

        def serving() -> bool:
            setup.procs.check_alive("caddy", caddy)
            done = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", base + SMALL_PATH],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            return done.stdout == "200"

        wait_until("Caddy in front of the relay", serving, 30, 0.1)
        rates = {}
        for connections in (1, 64):
            if args.warmup:
                wrk(base + SMALL_PATH, connections, args.warmup)
            rates[connections] = statistics.median(
                wrk(base + SMALL_PATH, connections, args.seconds).rate for _ in range(args.rounds)
            )
        download = download_mb_per_s(base + "/api/blob", args.download_mib * MIB, args.repeats)
    finally:
        if previous is None:
            os.environ.pop("CURL_CA_BUNDLE", None)
        else:
            os.environ["CURL_CA_BUNDLE"] = previous
        setup.procs.stop([caddy])
    return "\n".join(
        [
            "",
            "",
            "Behind the ingress: agent-relay with Caddy in front (TLS, routes generated from "
            "deploy/traefik/ingressroute.yaml: /v1/relay without forward-auth), same wrk and "
            "curl runs (median of the rounds, not interleaved with the table above).",
            "",
            "| path | requests/s, 1 connection | requests/s, 64 connections | "
            f"{args.download_mib} MiB download (MB/s) |",
            "|---|---:|---:|---:|",
            f"| behind the ingress | {rates[1]:.0f} | {rates[64]:.0f} | {download:.0f} |",
        ]
    )


# ------------------------------------------------------------------ the load process


def hold_hosts(relay_url: str, token_file: Path, count: int) -> None:
    """Open ``count`` host control channels (our dial + yamux client), each with its own
    machine_id, print ``ready N`` and keep them open until stdin closes or a signal."""
    import asyncio

    from agent_relay.host.dial import connect_url, dial
    from agent_relay.mux import MuxSession
    from agent_relay.transport import WebSocketByteStream

    token = token_file.read_text().strip()
    before = rss_kib(os.getpid())

    async def main() -> None:
        gate = asyncio.Semaphore(32)
        sessions: list[MuxSession] = []

        async def one(index: int) -> None:
            url = connect_url(
                relay_url,
                machine_id=f"bench-idle-{index}",
                name=f"idle-{index}",
                agent_version="bench",
            )
            async with gate:
                websocket = await dial(url, token, open_timeout=30)
            sessions.append(
                MuxSession(WebSocketByteStream(websocket), client=True, name=f"idle-{index}")
            )

        async with asyncio.timeout(60 + count * 0.1):
            await asyncio.gather(*(one(i) for i in range(count)))
        print(f"ready {len(sessions)} {before}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.buffer.read)  # until the bench closes it
        for session in sessions:
            await session.close()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~30 s)")
    parser.add_argument("--seconds", type=int, help="wrk seconds per case and round [3; quick 1]")
    parser.add_argument("--rounds", type=int, help="rounds of wrk runs, median [3; quick 1]")
    parser.add_argument("--warmup", type=int, help="wrk warm-up seconds per case [1; quick 0]")
    parser.add_argument("--download-mib", type=int, help="download size [100; quick 16]")
    parser.add_argument("--repeats", type=int, help="downloads per path, median [3; quick 1]")
    parser.add_argument("--hosts", type=int, help="idle hosts at the relay [1000; quick 20]")
    parser.add_argument("--connectors", type=int, help="connector processes [20; quick 2]")
    parser.add_argument("--ssh-sessions", type=int, help="ssh -R sessions [1000; quick 10]")
    parser.add_argument(
        "--no-mixed",
        dest="mixed",
        action="store_false",
        help="skip the drop-in pairings with the reference-like peers",
    )
    parser.add_argument(
        "--paths", help=f"only these (comma-separated, direct always): {','.join(ALL_PATHS)}"
    )
    parser.add_argument(
        "--requests-only",
        action="store_true",
        help="only the request and transfer table (no memory, ingress or drop-in phases)",
    )
    parser.add_argument("--no-install", action="store_true", help="fail instead of apt-get install")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir and its logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    parser.add_argument("--hold-hosts", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--signed-load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--relay-url", help=argparse.SUPPRESS)
    parser.add_argument("--token-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold_hosts is not None:
        hold_hosts(args.relay_url, args.token_file, args.hold_hosts)
        return
    if args.signed_load is not None:
        run_signed_load(args.store, args.relay_url, args.token_file, args.signed_load, args.seconds)
        return
    defaults = {
        "seconds": (3, 1), "rounds": (3, 1), "warmup": (1, 0), "download_mib": (100, 16),
        "repeats": (3, 1), "hosts": (1000, 20), "connectors": (20, 2), "ssh_sessions": (1000, 10),
    }  # fmt: skip
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.hosts < 2 or min(args.connectors, args.ssh_sessions, args.repeats, args.rounds) < 1:
        parser.error("--hosts must be >= 2; --connectors, --ssh-sessions, --repeats, --rounds >= 1")
    if args.seconds < 1 or args.warmup < 0 or args.download_mib < 1:
        parser.error("--seconds and --download-mib must be >= 1, --warmup >= 0")

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        print(run(args), flush=True)
    except BenchError as exc:
        sys.exit(f"bench/e2e.py: {exc}")
    except KeyboardInterrupt:
        sys.exit("bench/e2e.py: interrupted; every process it started was stopped")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()

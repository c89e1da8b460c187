"""The relay's memory under load, against the sidecar's 128 MiB limit (issue 15 item 1).

The relay runs as its own process (``agent-relay server``, SQLite by default, or
``--database-url postgresql://…``); this process plays the hosts (the project's own
connectors over loopback WebSockets, in front of one small local server) and the clients.
The relay's resident memory is sampled from /proc all along. Phases, in one relay run:

- idle, no host connected;
- ``--hosts`` idle hosts connected;
- a mixed load of ``--requests`` requests by ``--workers`` workers at once (small answers,
  16 KiB and 1 MiB downloads, 256 KiB uploads), spread over the hosts;
- ``--stalled`` clients that ask for a large download and never read, spread over hosts;
- one host that floods (answers as fast as its windows allow) and ``--stalled`` clients of
  the same user, all on that host, that never read;
- after each load phase, the RSS once the load has ended (memory given back, not kept as a
  high-water mark).

The table prints each figure beside its target, and the relay's own count of buffered
bytes (its receive budget, from /metrics) at the peak.

    .venv/bin/python bench/relay_memory.py [--hosts 1000] [--workers 1000]
        [--requests 5000] [--stalled 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx

from agent_relay.host import (
    BackoffPolicy,
    Connector,
    ConnectorConfig,
    PoolLimits,
    StaticToken,
    UpstreamPool,
    UpstreamTarget,
)
from agent_relay.httpwire import HttpConnection, HttpProtocolError, SocketChannel

LIMIT_MIB = 128.0
CHUNK = 64 * 1024
BLOCK = bytes(range(256)) * (CHUNK // 256)
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ memory of a process


def _status_kib(pid: int, field_name: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return float(line.split()[1])
    raise RuntimeError(f"no {field_name} for pid {pid}")


@dataclass
class MemoryWatch:
    """Samples a process's RSS every ``interval`` seconds; the peak of each phase."""

    pid: int
    interval: float = 0.02
    phase: str = "start"
    peaks: dict[str, float] = field(default_factory=dict)  # MiB

    def rss(self) -> float:
        return _status_kib(self.pid, "VmRSS") / 1024

    def high_water(self) -> float:
        return _status_kib(self.pid, "VmHWM") / 1024

    async def run(self) -> None:
        while True:
            value = self.rss()
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), value)
            await asyncio.sleep(self.interval)


# ------------------------------------------------------------------ the local server


async def serve_local(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """``/bytes/N``: N bytes, streamed; anything else: a small answer. Keep-alive."""
    channel = SocketChannel(reader, writer)
    http = HttpConnection(channel, client=False)
    try:
        while (request := await http.receive_request()) is not None:
            async for _ in http.receive_body():
                pass
            path = request.target.decode()
            if path.startswith("/bytes/"):
                size = int(path.removeprefix("/bytes/"))
                await http.send(
                    h11.Response(status_code=200, headers=[("content-length", str(size))])
                )
                sent = 0
                while sent < size:
                    part = BLOCK[: size - sent]
                    await http.send_data(part)
                    sent += len(part)
                await http.end_message()
            else:
                body = b'{"ok":true}'
                await http.send(
                    h11.Response(status_code=200, headers=[("content-length", str(len(body)))])
                )
                await http.send_data(body)
                await http.end_message()
            if not http.can_reuse:
                return
            http.start_next_cycle()
    except (HttpProtocolError, ConnectionError):
        pass
    finally:
        writer.close()


# ------------------------------------------------------------------ the relay process


def _cli(*args: str, data_dir: Path, database_url: str | None) -> str:
    database = {"SERVER_DATABASE_URL": database_url} if database_url else {}
    result = subprocess.run(
        [sys.executable, "-c", "from agent_relay.cli import main; main()", *args],
        env={**os.environ, "AGENT_RELAY_DATA_DIR": str(data_dir), **database},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


RELAY_ENV = {
    # One user plays every host and client: the per-user caps must not be what is measured.
    "AGENT_RELAY_MAX_HOSTS_PER_USER": "100000",
    "AGENT_RELAY_MAX_SESSIONS_PER_USER": "100000",
}


@contextlib.asynccontextmanager
async def relay_process(
    data_dir: Path, database_url: str | None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = free_port()
    database = ["--database-url", database_url] if database_url else []
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from agent_relay.cli import main; main()",
        "server",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        *database,
        env={**os.environ, **RELAY_ENV},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{url}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the relay did not start")
        yield process, url
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


# ------------------------------------------------------------------ the load

HOLD_SECONDS = 4.0  # how long stalled clients stay, for the relay's buffers to fill
SETTLE_SECONDS = 3.0  # after a load, before "after" is read
STALLED_SIZE = 256 * MIB  # what a stalled client asks for (never all sent)


@dataclass
class Row:
    name: str
    mib: float
    target: float | None
    buffered: float | None = None  # the relay's own count of buffered bytes, MiB


@dataclass
class Bench:
    args: argparse.Namespace
    url: str
    token: str
    watch: MemoryWatch
    rows: list[Row] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)

    async def buffered_mib(self, client: httpx.AsyncClient) -> float | None:
        text = (await client.get("/metrics")).text
        found = re.search(r"^agent_relay_buffered_bytes (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) / MIB if found else None

    async def settle(self, client: httpx.AsyncClient, name: str, target: float | None) -> None:
        await asyncio.sleep(SETTLE_SECONDS)
        self.rows.append(Row(name, self.watch.rss(), target, await self.buffered_mib(client)))

    def peak(self, name: str, target: float | None, buffered: float | None) -> None:
        self.rows.append(Row(name, self.watch.peaks.get(name, 0.0), target, buffered))


async def run(args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="relay-memory-") as tmp:
        data_dir = Path(tmp)
        db = args.database_url
        _cli("users", "add", "bench", data_dir=data_dir, database_url=db)
        token = _cli("tokens", "issue", "bench", "--ttl", "1h", data_dir=data_dir, database_url=db)
        async with relay_process(data_dir, db) as (process, url):
            watch = MemoryWatch(process.pid)
            bench = Bench(args, url, token, watch)
            sampler = asyncio.create_task(watch.run())
            try:
                await bench_phases(bench)
            finally:
                sampler.cancel()
            bench.rows.append(Row("high-water mark (VmHWM)", watch.high_water(), None))
    return bench.rows


async def bench_phases(bench: Bench) -> None:
    args = bench.args
    limits = httpx.Limits(max_connections=args.workers + 16, max_keepalive_connections=args.workers)
    async with httpx.AsyncClient(base_url=bench.url, limits=limits, timeout=300) as client:
        await asyncio.sleep(1.0)
        bench.rows.append(Row("idle, no host", bench.watch.rss(), 64.0))
        async with hosts_connected(bench, client):
            await bench.settle(client, f"{args.hosts} idle hosts", 96.0)
            hosts_idle = bench.rows[-1].mib
            returned = hosts_idle + 16.0

            name = f"mixed load: {args.requests} requests, {args.workers} at once"
            bench.watch.phase = name
            started = time.perf_counter()
            buffered = await with_buffered_peak(
                bench, client, mixed(client, bench.bases, args.requests, args.workers)
            )
            rate = args.requests / (time.perf_counter() - started)
            bench.peak(name, LIMIT_MIB, buffered)
            bench.watch.phase = "after"
            await bench.settle(client, "  after the mixed load", returned)
            print(f"mixed load: {rate:,.0f} requests/s through the relay", flush=True)

            name = f"{args.stalled} stalled clients, over the hosts"
            bench.watch.phase = name
            spread = [bench.bases[n % len(bench.bases)] for n in range(args.stalled)]
            buffered = await with_buffered_peak(bench, client, stalled_clients(bench, spread))
            bench.peak(name, LIMIT_MIB, buffered)
            bench.watch.phase = "after"
            await bench.settle(client, "  after the stalled clients", returned)

            name = f"1 flooding host + {args.stalled} of its user's clients not reading"
            bench.watch.phase = name
            one = [bench.bases[0]] * args.stalled
            buffered = await with_buffered_peak(bench, client, stalled_clients(bench, one))
            bench.peak(name, LIMIT_MIB, buffered)
            bench.watch.phase = "after"
            await bench.settle(client, "  after the flood", returned)


async def with_buffered_peak(
    bench: Bench, client: httpx.AsyncClient, work: Awaitable[None]
) -> float | None:
    """Run ``work`` while polling the relay's buffered-bytes gauge; its peak."""
    peak: float | None = None

    async def poll() -> None:
        nonlocal peak
        async with httpx.AsyncClient(base_url=bench.url) as side:
            while True:
                value = await bench.buffered_mib(side)
                if value is not None:
                    peak = max(peak or 0.0, value)
                await asyncio.sleep(0.2)

    poller = asyncio.create_task(poll())
    try:
        await work
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    return peak


@contextlib.asynccontextmanager
async def hosts_connected(bench: Bench, client: httpx.AsyncClient) -> AsyncIterator[None]:
    """The hosts: the project's own connectors, all in one child process (so that the
    clients' load here does not starve their keepalives)."""
    args = bench.args
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--play-hosts",
        str(args.hosts),
        "--relay-url",
        bench.url,
        "--token",
        bench.token,
        stdin=asyncio.subprocess.PIPE,
        stderr=None if args.verbose else asyncio.subprocess.DEVNULL,
    )
    try:
        auth = {"Authorization": f"Bearer {bench.token}"}
        bench.bases = await relay_paths(client, auth, args.hosts)
        yield
    finally:
        assert child.stdin is not None
        child.stdin.close()  # the child stops its connectors when its stdin ends
        try:
            await asyncio.wait_for(child.wait(), 60)
        except TimeoutError:
            child.kill()
            await child.wait()


async def play_hosts(count: int, relay_url: str, token: str) -> None:
    """The child: a local server and ``count`` connectors, until stdin closes."""
    local = await asyncio.start_server(serve_local, "127.0.0.1", 0)
    local_url = f"http://127.0.0.1:{local.sockets[0].getsockname()[1]}"
    connectors: list[Connector] = []
    pools: list[UpstreamPool] = []
    tasks: list[asyncio.Task[None]] = []
    for number in range(count):
        pool = UpstreamPool(UpstreamTarget.parse(local_url), PoolLimits(max_connections=256))
        config = ConnectorConfig(
            relay_url=relay_url,
            machine_id=f"bench-host-{number}",
            name=f"bench {number}",
            backoff=BackoffPolicy(base=0.5, cap=3.0, reset_after=60.0),
            look_up_host_id=False,
        )
        connector = Connector(config, StaticToken(token), pool)
        connectors.append(connector)
        pools.append(pool)
        tasks.append(asyncio.create_task(connector.run()))
        if number % 50 == 49:
            await asyncio.sleep(0.2)  # not the restart herd: that is another bench's
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    await asyncio.gather(*(c.stop(timeout=2) for c in connectors), return_exceptions=True)
    await asyncio.gather(*tasks, return_exceptions=True)
    for pool in pools:
        await pool.close()
    local.close()


async def relay_paths(client: httpx.AsyncClient, auth: dict[str, str], hosts: int) -> list[str]:
    """A relay session on every host, once all are online. A relay busy with the hosts'
    connects may answer 503 for a while: asked again."""
    online: list[str] = []
    for _ in range(1200):
        response = await client.get("/v1/hosts", headers=auth)
        if response.status_code == 200:
            online = [h["id"] for h in response.json()["hosts"] if h["online"]]
            if len(online) >= hosts:
                break
        await asyncio.sleep(1.0)
    else:
        raise RuntimeError(f"only {len(online)} of {hosts} hosts came online")
    bases = []
    for host_id in online:
        for _ in range(100):
            response = await client.post(f"/v1/relay/create/{host_id}", headers=auth)
            if response.status_code == 200:
                break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"no relay session: {response.status_code} {response.text}")
        bases.append(f"/v1/relay/h/{host_id}/s/{response.json()['session_id']}")
    return bases


UPLOAD = BLOCK * 4  # 256 KiB


async def mixed(client: httpx.AsyncClient, bases: list[str], total: int, width: int) -> None:
    """Of every ten requests: six small answers, two 16 KiB, one 1 MiB download, one
    256 KiB upload."""
    counter = iter(range(total))

    async def worker() -> None:
        for number in counter:
            base = bases[number % len(bases)]
            kind = number % 10
            if kind == 9:
                response = await client.post(f"{base}/upload", content=UPLOAD)
            else:
                path = {6: "/bytes/16384", 7: "/bytes/16384", 8: f"/bytes/{MIB}"}.get(
                    kind, "/api/info"
                )
                response = await client.get(base + path)
            if response.status_code != 200:
                raise RuntimeError(f"{base}: {response.status_code} {response.text[:200]}")

    await gather(*(worker() for _ in range(width)))


async def stalled_clients(bench: Bench, bases: list[str]) -> None:
    """Clients that ask for a large download and never read; a small receive buffer, so
    the kernel holds little for them and what the relay keeps shows."""
    host, port = bench.url.removeprefix("http://").split(":")
    writers: list[asyncio.StreamWriter] = []
    try:
        for base in bases:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            _, writer = await asyncio.open_connection(sock=sock)
            request = f"GET {base}/bytes/{STALLED_SIZE} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            writer.write(request.encode())
            writers.append(writer)
        await asyncio.sleep(HOLD_SECONDS)
    finally:
        for writer in writers:
            writer.transport.abort()


async def gather(*coros: Awaitable[None]) -> None:
    await asyncio.gather(*coros)


def report(rows: list[Row]) -> None:
    print()
    print(f"relay process memory (RSS, MiB); the pod's limit is {LIMIT_MIB:.0f} MiB")
    print(f"{'phase':<58}{'RSS MiB':>9}{'target':>9}{'buffered':>10}  verdict")
    for row in rows:
        target = f"≤ {row.target:.0f}" if row.target is not None else ""
        buffered = f"{row.buffered:.1f}" if row.buffered is not None else "-"
        verdict = ""
        if row.target is not None:
            verdict = "ok" if row.mib <= row.target else "OVER"
        print(f"{row.name:<58}{row.mib:>9.1f}{target:>9}{buffered:>10}  {verdict}")
    print("(buffered: the relay's own count of bytes its peers may have in its buffers, MiB,")
    print(" peak while the phase ran; '-' where the relay does not report it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="PostgreSQL; default SQLite")
    parser.add_argument("--verbose", action="store_true", help="the hosts' log on stderr")
    parser.add_argument("--play-hosts", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--relay-url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # A thousand hosts and a thousand clients: more descriptors than the usual soft limit;
    # the relay and the hosts' process inherit this.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.play_hosts:
        asyncio.run(play_hosts(args.play_hosts, args.relay_url, args.token))
        return
    print(
        f"bench/relay_memory.py: {args.hosts} hosts, {args.requests} mixed requests "
        f"({args.workers} at once), {args.stalled} stalled clients; "
        f"database: {'PostgreSQL' if args.database_url else 'SQLite'}",
        flush=True,
    )
    report(asyncio.run(run(args)))


if __name__ == "__main__":
    main()

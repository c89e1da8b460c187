"""The relay's memory under load, against the sidecar's 128 MiB limit.

The relay runs as its own process (``agent-relay server`` on SQLite); this process plays
many hosts (real connectors over loopback WebSockets, in front of one small local server),
and clients: many concurrent requests spread over the hosts, while one client streams a
big download through one host. The relay's resident memory is sampled from /proc all
along; the figures are its peak per phase and the kernel's high-water mark (VmHWM),
as MiB, as a share of the 128 MiB limit, and as a ratio to the same process idle.

    .venv/bin/python bench/relay_memory.py [--hosts 50] [--concurrency 256]
        [--requests 5000] [--download-mib 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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


def _cli(*args: str, data_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "from agent_relay.cli import main; main()", *args],
        env={**os.environ, "AGENT_RELAY_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@contextlib.asynccontextmanager
async def relay_process(data_dir: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from agent_relay.cli import main; main()",
        "server",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
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


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="relay-memory-") as tmp:
        data_dir = Path(tmp)
        _cli("users", "add", "bench", data_dir=data_dir)
        token = _cli("tokens", "issue", "bench", "--ttl", "1h", data_dir=data_dir)
        local = await asyncio.start_server(serve_local, "127.0.0.1", 0)
        local_url = f"http://127.0.0.1:{local.sockets[0].getsockname()[1]}"
        async with relay_process(data_dir) as (process, url):
            watch = MemoryWatch(process.pid)
            sampler = asyncio.create_task(watch.run())
            await asyncio.sleep(1.0)
            idle = watch.rss()
            try:
                await load(args, url, token, local_url, watch)
            finally:
                sampler.cancel()
                high_water = watch.high_water()
        local.close()
    report(args, idle, watch.peaks, high_water)


async def load(
    args: argparse.Namespace, url: str, token: str, local_url: str, watch: MemoryWatch
) -> None:
    watch.phase = f"{args.hosts} hosts connected"
    connectors: list[Connector] = []
    pools: list[UpstreamPool] = []
    tasks: list[asyncio.Task[None]] = []
    for number in range(args.hosts):
        pool = UpstreamPool(UpstreamTarget.parse(local_url), PoolLimits(max_connections=16))
        config = ConnectorConfig(
            relay_url=url,
            machine_id=f"bench-host-{number}",
            name=f"bench {number}",
            backoff=BackoffPolicy(base=0.1, cap=1.0, reset_after=60.0),
            look_up_host_id=False,
        )
        connector = Connector(config, StaticToken(token), pool)
        connectors.append(connector)
        pools.append(pool)
        tasks.append(asyncio.create_task(connector.run()))
    auth = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=args.concurrency + 8, max_keepalive_connections=64)
    try:
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
            bases = await relay_paths(client, auth, args.hosts)
            await asyncio.sleep(1.0)

            watch.phase = f"{args.requests} requests, {args.concurrency} at once"
            started = time.perf_counter()
            await requests(client, bases, args.requests, args.concurrency)
            rate = args.requests / (time.perf_counter() - started)
            print(f"small requests: {rate:,.0f}/s through the relay (all hosts)")

            watch.phase = f"{args.download_mib} MiB download + requests"
            started = time.perf_counter()
            size = args.download_mib * MIB
            await gather(
                download(client, bases[0], size),
                requests(client, bases, args.requests, args.concurrency),
            )
            seconds = time.perf_counter() - started
            print(f"download: {args.download_mib} MiB in {seconds:.1f} s, with requests beside it")
    finally:
        for connector in connectors:
            await connector.stop(timeout=2)
        await asyncio.gather(*tasks, return_exceptions=True)
        for pool in pools:
            await pool.close()


async def relay_paths(client: httpx.AsyncClient, auth: dict[str, str], hosts: int) -> list[str]:
    for _ in range(300):
        listed = (await client.get("/v1/hosts", headers=auth)).json()["hosts"]
        online = [h["id"] for h in listed if h["online"]]
        if len(online) >= hosts:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"only {len(online)} of {hosts} hosts came online")
    bases = []
    for host_id in online:
        session = (await client.post(f"/v1/relay/create/{host_id}", headers=auth)).json()
        bases.append(f"/v1/relay/h/{host_id}/s/{session['session_id']}")
    return bases


async def requests(client: httpx.AsyncClient, bases: list[str], total: int, width: int) -> None:
    counter = iter(range(total))

    async def worker() -> None:
        for number in counter:
            base = bases[number % len(bases)]
            path = f"{base}/bytes/16384" if number % 4 == 0 else f"{base}/api/info"
            response = await client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

    await gather(*(worker() for _ in range(width)))


async def download(client: httpx.AsyncClient, base: str, size: int) -> None:
    received = 0
    async with client.stream("GET", f"{base}/bytes/{size}") as response:
        async for chunk in response.aiter_raw():
            received += len(chunk)
    if received != size:
        raise RuntimeError(f"download: {received} of {size} bytes")


async def gather(*coros: Awaitable[None]) -> None:
    await asyncio.gather(*coros)


def report(args: argparse.Namespace, idle: float, peaks: dict[str, float], hwm: float) -> None:
    print()
    print(f"relay process memory (RSS, MiB); limit {LIMIT_MIB:.0f} MiB")
    print(f"{'phase':<44}{'peak MiB':>10}{'of limit':>10}{'x idle':>8}")
    print(f"{'idle (baseline)':<44}{idle:>10.1f}{idle / LIMIT_MIB:>10.0%}{1:>8.2f}")
    for phase, peak in peaks.items():
        if phase == "start":
            continue
        print(f"{phase:<44}{peak:>10.1f}{peak / LIMIT_MIB:>10.0%}{peak / idle:>8.2f}")
    verdict = "within" if hwm < LIMIT_MIB else "OVER"
    print(
        f"{'high-water mark (VmHWM)':<44}{hwm:>10.1f}{hwm / LIMIT_MIB:>10.0%}{hwm / idle:>8.2f}"
        f"   {verdict} the {LIMIT_MIB:.0f} MiB limit"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--download-mib", type=int, default=1024)
    args = parser.parse_args()
    print(
        f"bench/relay_memory.py: {args.hosts} hosts, {args.requests} requests "
        f"({args.concurrency} at once), {args.download_mib} MiB download"
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

"""A hostile host's tiny chunks against the shared relay (issue 11 item 2).

The relay runs as its own process (``agent-relay server`` on SQLite). This process plays
one hostile host (a raw yamux host, ``tests/support/fakehost.py``) whose answer is a body
of 1-byte chunks written in large pieces, so that the relay has a whole stream window of
them buffered at once, and the clients downloading it. Printed: ``/health`` latency
(probed from a thread, over its own connections) idle and under the flood, and the
relay's CPU per MiB of tiny chunks next to its CPU per MiB of an ordinary download.

    .venv/bin/python bench/tiny_chunks.py [--chunks 400000] [--floods 2] [--plain-mib 64]

``--relay-pythonpath DIR`` runs the relay on another source tree (to compare with an
older version in the same run conditions).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fakehost import FakeHost  # noqa: E402

from bench.relay_memory import _cli, free_port  # noqa: E402

MIB = 1024 * 1024
WIRE_PER_CHUNK = len(b"1\r\nx\r\n")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def relay_process(
    data_dir: Path, pythonpath: str | None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = free_port()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from agent_relay.cli import main; main()",
        "server",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        env=env,
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


class HealthProbe(threading.Thread):
    """GET /health in a loop on fresh connections, from a thread of its own."""

    def __init__(self, port: int, pause: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.pause = pause
        self.samples: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request("GET", "/health")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            self.samples.append(time.perf_counter() - started)
            self.failures += not ok
            self.stopping.wait(self.pause)

    def stop(self) -> dict[str, float]:
        self.stopping.set()
        self.join()
        samples = sorted(self.samples) or [0.0]
        return {
            "p50_ms": statistics.median(samples) * 1000,
            "max_ms": samples[-1] * 1000,
            "probes": len(self.samples),
            "failed": self.failures,
        }


async def download(port: int, target: str) -> int:
    """The bytes of the answer (head and the relay's own chunk framing included)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    received = 0
    while data := await reader.read(1024 * 1024):
        received += len(data)
    writer.close()
    return received


async def phase(
    pid: int, port: int, targets: list[str]
) -> tuple[dict[str, float], float, float, int]:
    probe = HealthProbe(port)
    probe.start()
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    sizes = await asyncio.gather(*(download(port, target) for target in targets))
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu
    return probe.stop(), cpu, seconds, sum(sizes)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tiny-chunks-") as tmp:
        data_dir = Path(tmp)
        _cli("users", "add", "bench", data_dir=data_dir, database_url=None)
        token = _cli(
            "tokens", "issue", "bench", "--ttl", "1h", data_dir=data_dir, database_url=None
        )
        async with relay_process(data_dir, args.relay_pythonpath) as (process, url):
            port = int(url.rsplit(":", 1)[1])
            host = FakeHost(url, token, "tiny-host")
            await host.connect()
            auth = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                host_id = None
                for _ in range(200):
                    listed = (await client.get("/v1/hosts", headers=auth)).json()["hosts"]
                    host_id = next((h["id"] for h in listed if h["online"]), None)
                    if host_id:
                        break
                    await asyncio.sleep(0.05)
                assert host_id, "the host never came online"
                session = (await client.post(f"/v1/relay/create/{host_id}", headers=auth)).json()
            base = f"/v1/relay/h/{host_id}/s/{session['session_id']}"

            idle = HealthProbe(port)
            idle.start()
            await asyncio.sleep(1.0)
            idle_figures = idle.stop()

            plain_size = args.plain_mib * MIB
            plain, plain_cpu, plain_seconds, _ = await phase(
                process.pid, port, [f"{base}/bytes/{plain_size}"]
            )
            flood_targets = [f"{base}/tiny/{args.chunks}"] * args.floods
            flood, flood_cpu, flood_seconds, flood_out = await phase(
                process.pid, port, flood_targets
            )
            await host.close()

    wire_mib = args.chunks * args.floods * WIRE_PER_CHUNK / MIB
    body_mib = args.chunks * args.floods / MIB
    print(
        f"bench/tiny_chunks.py: {args.floods} x {args.chunks} 1-byte chunks "
        f"({wire_mib:.1f} MiB on the wire from the host), plain download {args.plain_mib} MiB; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print("| phase | /health p50 ms | /health max ms | probes (failed) | relay CPU s | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, figures, cpu, seconds in (
        ("idle", idle_figures, 0.0, 1.0),
        (f"plain download {args.plain_mib} MiB", plain, plain_cpu, plain_seconds),
        ("tiny-chunk flood", flood, flood_cpu, flood_seconds),
    ):
        print(
            f"| {name} | {figures['p50_ms']:.1f} | {figures['max_ms']:.1f} "
            f"| {figures['probes']:.0f} ({figures['failed']:.0f}) | {cpu:.2f} | {seconds:.1f} |"
        )
    print(f"relay CPU per MiB, plain download: {plain_cpu / args.plain_mib * 1000:.1f} ms")
    print(
        f"relay CPU per MiB of tiny chunks: {flood_cpu / wire_mib * 1000:.0f} ms per wire MiB, "
        f"{flood_cpu / body_mib * 1000:.0f} ms per body MiB "
        f"({flood_out / MIB:.1f} MiB written to the clients)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=400_000, help="chunks per flood [400000]")
    parser.add_argument("--floods", type=int, default=2, help="concurrent floods [2]")
    parser.add_argument("--plain-mib", type=int, default=64, help="plain download [64]")
    parser.add_argument("--relay-pythonpath", help="run the relay on this source tree")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

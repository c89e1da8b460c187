"""Traffic through the real relay and connector processes to the real sample server:
JSON calls, server-sent events, a WebSocket, bulk bytes both ways, many requests at once,
and a slow reader of a huge response. These tests share one stack and leave it running."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from .stack import MIB, Process, Stack, expected_blob_digest, report

pytestmark = pytest.mark.timeout(120)

BULK = 100 * MIB


def client(stack: Stack, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.base, timeout=30, **options)


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs from a text/event-stream, as they arrive."""
    kind, data = "message", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


async def test_json_api_through_relay(stack: Stack) -> None:
    async with client(stack) as api:
        listed = await api.get("/api/workspaces")
        assert listed.status_code == 200
        assert listed.headers["content-type"] == "application/json"
        workspaces = listed.json()["workspaces"]
        assert [w["name"] for w in workspaces][:2] == ["agent-relay", "homelab"]

        repos = await api.get(f"/api/workspaces/{workspaces[0]['id']}/repos")
        assert repos.status_code == 200
        assert [r["name"] for r in repos.json()["repos"]] == ["agent-relay", "vibe-kanban"]

        created = await api.post("/api/workspaces", json={"name": "through the relay"})
        assert created.status_code == 201
        workspace = created.json()
        assert workspace["name"] == "through the relay"
        listed_again = (await api.get("/api/workspaces")).json()["workspaces"]
        assert workspace["id"] in [w["id"] for w in listed_again]

        repo = await api.post(f"/api/workspaces/{workspace['id']}/repos", json={"name": "r1"})
        assert repo.status_code == 201
        repos_now = (await api.get(f"/api/workspaces/{workspace['id']}/repos")).json()
        assert [r["name"] for r in repos_now["repos"]] == ["r1"]

        # The sample server's own errors come back as they are.
        bad = await api.post("/api/workspaces", content=b"{not json")
        assert bad.status_code == 400
        assert bad.json() == {"error": "body must be JSON"}
        missing = await api.get("/api/workspaces/nope/repos")
        assert missing.status_code == 404
        # The connector marks what it forwards, whatever the client claims.
        whoami = await api.get("/api/whoami", headers={"x-vk-relayed": "0"})
        assert whoami.json() == {"relayed": True, "path": "/api/whoami"}


async def test_server_sent_events_arrive_while_the_stream_is_open(stack: Stack) -> None:
    async with client(stack) as api, api.stream("GET", "/api/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = sse_events(stream.aiter_lines())
        async with asyncio.timeout(10):
            assert await anext(events) == ("hello", "{}")
        # Made after the stream opened: it can only arrive through the open stream.
        created = await api.post("/api/workspaces", json={"name": "announced"})
        assert created.status_code == 201
        seen: list[str] = []
        async with asyncio.timeout(10):
            async for kind, data in events:
                seen.append(kind)
                if kind == "workspace_created":
                    assert json.loads(data)["workspace"]["id"] == created.json()["id"]
                    break
        ticks: list[int] = []
        async with asyncio.timeout(10):
            async for kind, data in events:
                if kind == "tick":
                    ticks.append(json.loads(data)["n"])
                    if len(ticks) == 2:
                        break
        assert ticks[1] == ticks[0] + 1
        assert set(seen) <= {"tick", "workspace_created"}


async def test_websocket_echo_through_two_hops(stack: Stack) -> None:
    async with (
        asyncio.timeout(20),
        ws_connect(stack.ws_base + "/api/terminal", max_size=4 * MIB) as terminal,
    ):
        greeting = await terminal.recv()
        assert greeting == "sample terminal: every line comes back\r\n$ "
        for i in range(20):
            await terminal.send(f"line {i}")
            assert await terminal.recv() == f"line {i}\r\n$ "
        payload = random.randbytes(MIB)
        await terminal.send(payload)
        assert await terminal.recv() == payload
        # Many in flight at once come back whole and in order.
        burst = [random.randbytes(1000 + i) for i in range(50)]
        for message in burst:
            await terminal.send(message)
        assert [await terminal.recv() for _ in burst] == burst
        # The closing handshake goes all the way to the sample server and back.
        await terminal.close()
        assert terminal.close_code == 1000  # 1006 if no Close frame came back


async def test_100_mib_download_and_upload_with_checksums(stack: Stack) -> None:
    expected = expected_blob_digest(BULK)
    async with client(stack) as api:
        digest = hashlib.sha256()
        received = 0
        began = time.monotonic()
        async with api.stream("GET", f"/api/blob?size={BULK}") as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(BULK)
            async for chunk in download.aiter_raw():
                digest.update(chunk)
                received += len(chunk)
        down_seconds = time.monotonic() - began
        assert received == BULK
        assert digest.hexdigest() == expected

        sent = hashlib.sha256()

        async def body() -> AsyncIterator[bytes]:
            for _ in range(BULK // MIB):
                chunk = random.randbytes(MIB)
                sent.update(chunk)
                yield chunk

        began = time.monotonic()
        upload = await api.post("/api/blob", content=body())
        up_seconds = time.monotonic() - began
        assert upload.status_code == 200, upload.text
        assert upload.json() == {"sha256": sent.hexdigest(), "bytes": BULK}
    report(
        f"100 MiB through relay+connector: download {BULK / MIB / down_seconds:.0f} MiB/s, "
        f"upload {BULK / MIB / up_seconds:.0f} MiB/s"
    )


async def test_upload_with_expect_100_continue(stack: Stack) -> None:
    """curl sends ``Expect: 100-continue`` with bodies over 1 MiB and holds the body back
    until told to go on (or a second has passed): the relay must say it."""
    body = random.randbytes(2 * MIB)
    url = httpx.URL(stack.base + "/api/blob")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(
            f"POST {url.raw_path.decode()} HTTP/1.1\r\nhost: {url.netloc.decode()}\r\n"
            f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n".encode()
        )
        await writer.drain()
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 ")
        writer.write(body)
        await writer.drain()
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            answer = json.loads(await reader.readexactly(length))
        assert answer == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    finally:
        writer.close()
        await writer.wait_closed()


async def test_200_concurrent_requests(stack: Stack) -> None:
    count = 200
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with client(stack, limits=limits) as api:
        responses = await asyncio.gather(
            *(api.post("/api/workspaces", json={"name": f"concurrent {i}"}) for i in range(count))
        )
        assert [r.status_code for r in responses] == [201] * count
        # Each answer belongs to its own request.
        assert [r.json()["name"] for r in responses] == [f"concurrent {i}" for i in range(count)]
        listed = (await api.get("/api/workspaces")).json()["workspaces"]
        names = {w["name"] for w in listed}
        assert {f"concurrent {i}" for i in range(count)} <= names
        # And as many reads at once.
        reads = await asyncio.gather(*(api.get("/api/workspaces") for _ in range(count)))
        assert {r.status_code for r in reads} == {200}
        assert {len(r.json()["workspaces"]) for r in reads} == {len(listed)}


def relay_streams_in_flight(stack: Stack) -> float:
    metrics = httpx.get(f"{stack.relay_url}/metrics", timeout=5).text
    for line in metrics.splitlines():
        if line.startswith("agent_relay_streams_in_flight "):
            return float(line.split()[1])
    raise AssertionError("no agent_relay_streams_in_flight in /metrics")


def busy(stack: Stack) -> tuple[float, int, int]:
    """(relay streams in flight, connector streams, upstream connections in use)."""
    status = stack.status()
    assert status is not None
    return (
        relay_streams_in_flight(stack),
        status["active_streams"],
        status["upstream_pool"]["in_use"],
    )


async def test_clients_walking_away_leave_nothing_behind(stack: Stack) -> None:
    """Downloads, event streams and WebSockets dropped by the client mid-way: the relay,
    the connector and its upstream pool all let go of them."""
    assert busy(stack) == (0, 0, 0)
    abandoned: list[tuple[httpx.AsyncClient, AsyncIterator[bytes]]] = []
    for path in ["/api/blob?size=4294967296"] * 3 + ["/api/events"] * 3:
        api = client(stack)
        response = await api.send(api.build_request("GET", path), stream=True)
        assert response.status_code == 200
        body = response.aiter_raw()
        await anext(body)
        # Kept: a dropped body iterator would close its response when collected.
        abandoned.append((api, body))
    terminals = [await ws_connect(stack.ws_base + "/api/terminal") for _ in range(3)]
    for terminal in terminals:
        assert "$ " in str(await terminal.recv())
    # A WebSocket's upstream connection leaves the pool (detached to its splice).
    assert busy(stack) == (9, 9, 6)
    for api, _ in abandoned:
        await api.aclose()  # drops the connections with the responses unread
    for terminal in terminals:
        terminal.transport.abort()  # no closing handshake either
    began = time.monotonic()
    left = busy(stack)
    async with asyncio.timeout(10):
        while left != (0, 0, 0):
            await asyncio.sleep(0.05)
            left = busy(stack)
    report(
        f"9 exchanges dropped by their clients: all released in {time.monotonic() - began:.2f} s"
    )
    async with client(stack) as api:
        assert (await api.get("/api/whoami")).status_code == 200


async def _sample_rss(processes: list[Process], peaks: dict[str, int]) -> None:
    while True:
        for process in processes:
            peaks[process.name] = max(peaks[process.name], process.rss())
        await asyncio.sleep(0.05)


async def test_slow_client_keeps_relay_and_connector_memory_bounded(stack: Stack) -> None:
    """512 MiB read by a client that stalls and then reads in small sips with pauses: the
    connector and the relay must hold back (yamux window, socket backpressure) rather
    than buffer what the client has not taken."""
    size = 512 * MIB
    watched = [stack.relay, stack.connector]
    async with client(stack) as api:
        assert (await api.get("/api/whoami")).status_code == 200  # warm both processes
        baseline = {p.name: p.rss() for p in watched}
        peaks = dict(baseline)
        sampler = asyncio.create_task(_sample_rss(watched, peaks))
        digest = hashlib.sha256()
        received = 0
        began = time.monotonic()
        try:
            async with api.stream("GET", f"/api/blob?size={size}") as download:
                assert download.status_code == 200
                chunks = download.aiter_raw(64 * 1024)
                while received < 4 * MIB:
                    chunk = await anext(chunks)
                    digest.update(chunk)
                    received += len(chunk)
                await asyncio.sleep(2.0)  # stalled: everything upstream must stall too
                stalled = {p.name: p.rss() for p in watched}
                sip = 0
                async for chunk in chunks:
                    digest.update(chunk)
                    received += len(chunk)
                    sip += len(chunk)
                    if sip >= 2 * MIB:  # well below what the chain can carry
                        sip = 0
                        await asyncio.sleep(0.02)
        finally:
            sampler.cancel()
        seconds = time.monotonic() - began
    assert received == size
    assert digest.hexdigest() == expected_blob_digest(size)
    for process in watched:
        name = process.name
        report(
            f"slow 512 MiB read in {seconds:.1f} s: {name} RSS {baseline[name] / MIB:.0f} MiB"
            f" at start, +{(stalled[name] - baseline[name]) / MIB:.1f} MiB stalled,"
            f" +{(peaks[name] - baseline[name]) / MIB:.1f} MiB at peak"
        )
    for process in watched:
        name = process.name
        growth = peaks[name] - baseline[name]
        assert growth < 64 * MIB, f"{name} grew by {growth / MIB:.0f} MiB"

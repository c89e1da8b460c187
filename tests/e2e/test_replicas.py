"""Three relay replicas on one PostgreSQL behind Caddy (round-robin): every host is
reachable through every replica, hosts move and fail over, a replica drains on SIGTERM,
and the replica link is closed to anyone without the derived key (docs/replicas.md)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.support.fakehost import pattern
from tests.support.pgcluster import PostgresCluster, running_cluster

from .replicas import (
    Group,
    RoamingHost,
    make_user,
    running_group,
    session_path,
    wait_online,
)
from .stack import report

HOSTS = 200


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with running_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory, cluster: PostgresCluster) -> Iterator[Group]:
    with running_group(tmp_path_factory.mktemp("replicas"), cluster) as running:
        yield running


async def start_hosts(group: Group, count: int, prefix: str) -> list[RoamingHost]:
    await make_user(group)
    hosts = [RoamingHost(group.balancer_url, group.token, f"{prefix}-{n}") for n in range(count)]
    for start in range(0, count, 50):
        await asyncio.gather(*(h.start() for h in hosts[start : start + 50]))
    return hosts


async def stop_hosts(hosts: list[RoamingHost]) -> None:
    await asyncio.gather(*(h.stop() for h in hosts), return_exceptions=True)


def held(group: Group) -> list[float]:
    return [r.metric("agent_relay_tunnels") for r in group.replicas if r.process.running]


async def test_every_host_through_every_replica(group: Group) -> None:
    hosts = await start_hosts(group, HOSTS, "many")
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            ids = await wait_online(client, group, [f"many-{n}" for n in range(HOSTS)])
            spread = held(group)
            assert sum(spread) == HOSTS, spread
            assert min(spread) > 0, f"the balancer put every host on one replica: {spread}"
            paths = [await session_path(client, group, ids[f"many-{n}"]) for n in range(HOSTS)]
            failures: list[str] = []
            semaphore = asyncio.Semaphore(32)

            async def echo(base: str, path: str, n: int) -> None:
                async with semaphore:
                    body = f"host {n} via {base}".encode()
                    response = await client.post(f"{base}{path}/echo", content=body)
                    if response.status_code != 200 or response.content != body:
                        failures.append(f"{base}{path[:30]}: {response.status_code}")

            bases = [r.url for r in group.replicas] + [group.balancer_url]
            began = time.monotonic()
            await asyncio.gather(
                *(echo(base, path, n) for base in bases for n, path in enumerate(paths))
            )
            elapsed = time.monotonic() - began
            assert not failures, failures[:10]
            forwarded = sum(
                r.metric("agent_relay_forwarded_requests_total") for r in group.replicas
            )
            report(
                f"replicas: {len(bases) * HOSTS} requests to {HOSTS} hosts through 3 replicas "
                f"and the balancer in {elapsed:.1f} s, none failed; forwarded "
                f"(out + in) {forwarded:.0f}; hosts per replica {spread}"
            )
            assert forwarded > 0
    finally:
        await stop_hosts(hosts)


async def test_streams_events_and_websocket_across_replicas(group: Group) -> None:
    hosts = await start_hosts(group, 3, "kinds")
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            ids = await wait_online(client, group, ["kinds-0", "kinds-1", "kinds-2"])
            for machine in ("kinds-0", "kinds-1", "kinds-2"):
                path = await session_path(client, group, ids[machine])
                for replica in group.replicas:
                    base = f"{replica.url}{path}"
                    # A streamed upload (chunked, 3 MiB) and a 4 MiB download.
                    payload = pattern(3 * 1024 * 1024)

                    async def chunks(data: bytes = payload) -> AsyncIterator[bytes]:
                        for start in range(0, len(data), 256 * 1024):
                            yield data[start : start + 256 * 1024]

                    up = await client.post(f"{base}/upload", content=chunks())
                    digest = hashlib.sha256(payload).hexdigest()
                    assert up.status_code == 200
                    assert up.text == f"{len(payload)} {digest}"
                    down = await client.get(f"{base}/bytes/{4 * 1024 * 1024}")
                    assert down.content == pattern(4 * 1024 * 1024)
                    # Server-sent events arrive as they are sent.
                    async with client.stream("GET", f"{base}/events") as events:
                        assert events.headers["content-type"] == "text/event-stream"
                        text = "".join([chunk async for chunk in events.aiter_text()])
                    assert text == "".join(f"data: tick {n}\n\n" for n in range(3))
                    # A WebSocket through both hops (a 101, then a byte pipe).
                    async with ws_connect(
                        "ws" + base.removeprefix("http") + "/ws", open_timeout=10
                    ) as websocket:
                        await websocket.send("hello replicas")
                        assert await websocket.recv() == "hello replicas"
                        await websocket.send(b"\x00" * 100_000)
                        assert await websocket.recv() == b"\x00" * 100_000
    finally:
        await stop_hosts(hosts)

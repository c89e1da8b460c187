"""Three relay replicas on one PostgreSQL behind Caddy (round-robin): every host is
reachable through every replica, hosts move and fail over, a replica drains on SIGTERM,
and the replica link is closed to anyone without the derived key (docs/replicas.md)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from agent_relay.relay.auth import JwtSecret
from agent_relay.relay.link import LINK_HEADER, LINK_PATH, link_key, proof_header
from tests.support.fakehost import pattern
from tests.support.pgcluster import PostgresCluster, running_cluster

from .replicas import (
    REPLICA_TTL,
    Group,
    Replica,
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
    began = time.monotonic()
    hosts = await start_hosts(group, HOSTS, "many")
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            ids = await wait_online(client, group, [f"many-{n}" for n in range(HOSTS)])
            connected = time.monotonic() - began
            spread = held(group)
            assert sum(spread) == HOSTS, spread
            assert min(spread) > 0, f"the balancer put every host on one replica: {spread}"
            semaphore = asyncio.Semaphore(32)

            async def session(n: int) -> str:
                async with semaphore:
                    return await session_path(client, group, ids[f"many-{n}"])

            paths = await asyncio.gather(*(session(n) for n in range(HOSTS)))
            failures: list[str] = []

            async def echo(base: str, path: str, n: int) -> None:
                async with semaphore:
                    body = f"host {n} via {base}".encode()
                    response = await client.post(f"{base}{path}/echo", content=body)
                    if response.status_code != 200 or response.content != body:
                        failures.append(f"{base}{path[:30]}: {response.status_code}")

            # Each host through the balancer, and through one replica picked by number
            # (two in three of those requests cross to another replica).
            replicas = [r.url for r in group.replicas]
            requests = [(group.balancer_url, path, n) for n, path in enumerate(paths)]
            requests += [(replicas[n % 3], path, n) for n, path in enumerate(paths)]
            began = time.monotonic()
            await asyncio.gather(*(echo(base, path, n) for base, path, n in requests))
            elapsed = time.monotonic() - began
            assert not failures, failures[:10]
            forwarded = sum(
                r.metric("agent_relay_forwarded_requests_total") for r in group.replicas
            )
            report(
                f"replicas: {len(requests)} requests to {HOSTS} hosts through 3 replicas "
                f"and the balancer in {elapsed:.1f} s, none failed; forwarded "
                f"(out + in) {forwarded:.0f}; hosts per replica {spread}, all connected "
                f"in {connected:.1f} s"
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

                    # The host sees the real client, and nothing of the replicas' own.
                    seen = (await client.get(f"{base}/headers")).json()["headers"]
                    assert seen["x-forwarded-for"] == "127.0.0.1"
                    assert "x-agent-relay-forwarded" not in seen
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


async def test_host_moves_and_flaps_without_two_live_tunnels(group: Group) -> None:
    await make_user(group)
    previous: RoamingHost | None = None
    ends: list[float] = []
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for move in range(6):
                replica = group.replicas[move % 3]
                host = RoamingHost(replica.url, group.token, "flapper")
                host.stopped = True  # connected where we say, no roaming
                await host.connect()
                connected = time.monotonic()
                if previous is not None:
                    assert previous.session is not None
                    # Taken over at once: the old replica hears the NOTIFY and closes.
                    async with asyncio.timeout(5):
                        await previous.session.wait_closed()
                    ends.append(time.monotonic() - connected)
                    await previous.close()
                previous = host
                assert sum(held(group)) == 1, held(group)
                ids = await wait_online(client, group, ["flapper"])
                path = await session_path(client, group, ids["flapper"])
                other = group.replicas[(move + 1) % 3]
                before = len(host.requests)
                response = await client.get(f"{other.url}{path}/echo")
                assert response.status_code == 200
                assert len(host.requests) == before + 1, "answered by an old tunnel"
            # Gone from its replica without a new home: between replicas, not offline.
            assert previous is not None
            await previous.close()
            previous = None
            began = time.monotonic()
            response = await client.get(f"{group.replicas[1].url}{path}/echo")
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            report(
                f"replicas: host takeover closed the old tunnel in "
                f"{max(ends) * 1000:.0f} ms at most over {len(ends)} moves; a host between "
                f"replicas got 503 + Retry-After after {time.monotonic() - began:.1f} s"
            )
    finally:
        if previous is not None:
            await previous.close()


async def test_killed_replica_hosts_come_back_and_are_never_ghosts(group: Group) -> None:
    hosts = await start_hosts(group, 30, "survivor")
    victim = group.replicas[2]
    # One host that will not come back: its row must turn offline.
    lost = RoamingHost(victim.url, group.token, "lost")
    lost.stopped = True
    await lost.connect()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            machines = [f"survivor-{n}" for n in range(30)]
            ids = await wait_online(client, group, [*machines, "lost"])
            paths = {m: await session_path(client, group, ids[m]) for m in machines}
            on_victim = victim.metric("agent_relay_tunnels")
            assert on_victim >= 2
            killed = time.monotonic()
            victim.process.kill()
            survivors = group.replicas[:2]
            back: list[float] = []

            async def until_reachable(machine: str) -> None:
                for attempt in range(400):
                    base = survivors[attempt % 2].url
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.get(f"{base}{paths[machine]}/echo")
                        if response.status_code == 200:
                            back.append(time.monotonic() - killed)
                            return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"{machine} never came back")

            await asyncio.gather(*(until_reachable(m) for m in machines))
            back.sort()
            p99 = back[min(len(back) - 1, int(len(back) * 0.99))]
            # The dead replica's presence expires; the host that did not come back is
            # offline, and no row is online for a host that is nowhere.
            deadline = time.monotonic() + REPLICA_TTL * 4 + 5
            while group.online_rows() != 30 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            offline_after = time.monotonic() - killed
            assert group.online_rows() == 30
            lost_status = group.sql(f"SELECT status FROM hosts WHERE id = '{ids['lost']}'")  # noqa: S608
            assert lost_status.strip() == "offline"
            report(
                f"replicas: kill -9 of a replica holding {on_victim:.0f} of 31 hosts: every "
                f"host reachable again within {back[-1]:.2f} s (p99 {p99:.2f} s); its lost "
                f"host offline in the database after {offline_after:.1f} s "
                f"(replica TTL {REPLICA_TTL} s)"
            )
            assert p99 <= 5.0
    finally:
        await stop_hosts(hosts)
        await lost.close()
        victim.process.start()


async def test_sigterm_drains_with_no_failed_request(group: Group) -> None:
    hosts = await start_hosts(group, 12, "steady")
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            machines = [f"steady-{n}" for n in range(12)]
            ids = await wait_online(client, group, machines)
            paths = [await session_path(client, group, ids[m]) for m in machines]
            leaving = group.replicas[1]
            bases = [group.balancer_url, group.replicas[0].url, group.replicas[2].url]
            results: list[int] = []
            errors: list[str] = []
            stop = asyncio.Event()

            async def worker(n: int) -> None:
                while not stop.is_set():
                    base = bases[n % len(bases)]
                    path = paths[(n + len(results)) % len(paths)]
                    try:
                        response = await client.get(f"{base}{path}/sleep/0.05")
                        results.append(response.status_code)
                        if response.status_code != 200:
                            errors.append(f"{base}: {response.status_code} {response.text}")
                    except httpx.HTTPError as exc:
                        errors.append(f"{base}: {exc!r}")

            workers = [asyncio.create_task(worker(n)) for n in range(9)]
            await asyncio.sleep(1.0)
            on_leaving = leaving.metric("agent_relay_tunnels")
            leaving.process.signal(signal.SIGTERM)
            code = await asyncio.to_thread(leaving.process.wait)
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*workers)
            assert code == 0
            report(
                f"replicas: SIGTERM on a replica holding {on_leaving:.0f} hosts under steady "
                f"load: {len(results)} requests, {len(errors)} failed"
            )
            assert not errors, errors[:5]
            assert sum(held(group)) == 12
    finally:
        await stop_hosts(hosts)
        if not group.replicas[1].process.running:
            group.replicas[1].process.start()


def replica_id_of(group: Group, replica: Replica) -> uuid.UUID:
    address = f"127.0.0.1:{replica.link_port}"
    row = group.sql(f"SELECT replica_id FROM agent_relay_replicas WHERE address = '{address}'")  # noqa: S608
    return uuid.UUID(row.strip())


async def _link_status(url: str, header: str | None) -> int:
    extra = {LINK_HEADER.decode(): header} if header is not None else {}
    try:
        async with ws_connect(url, additional_headers=extra, open_timeout=5):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_link_refuses_peers_without_the_key_and_is_not_public(group: Group) -> None:
    target = group.replicas[0]
    receiver = replica_id_of(group, target)
    sender = replica_id_of(group, group.replicas[1])
    key = link_key(group.secret)
    link_url = f"ws://127.0.0.1:{target.link_port}{LINK_PATH}"
    # The derived key opens it (so the refusals below are refusals of the proof).
    assert await _link_status(link_url, proof_header(key, sender, receiver)) == 101
    assert await _link_status(link_url, None) == 403
    # The JWT secret itself is not the link key, nor is another secret's derived key.
    assert await _link_status(link_url, proof_header(group.secret.key, sender, receiver)) == 403
    other = link_key(JwtSecret.generate())
    assert await _link_status(link_url, proof_header(other, sender, receiver)) == 403
    # A proof made for another replica is good for that one only.
    assert await _link_status(link_url, proof_header(key, sender, sender)) == 403
    # The public port has no link, even with a valid proof.
    public = f"ws://127.0.0.1:{target.port}{LINK_PATH}"
    assert await _link_status(public, proof_header(key, sender, receiver)) == 404
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{target.url}{LINK_PATH}")
        assert response.status_code == 404
        # The forwarded marker from a client means nothing: still checked as any request.
        forged = await client.get(
            f"{target.url}/v1/relay/h/{uuid.uuid4()}/s/{uuid.uuid4()}/echo",
            headers={"x-agent-relay-forwarded": str(sender)},
        )
        assert forged.status_code == 401

"""Faults at scale, in one process (relay, connectors and the local server on loopback):
50 clients that stop reading, a slow 10 MiB upload, and a revoked host login with many
hosts behind it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from bench.herd import Fleet

from agent_relay.host import ForwardLimits, PoolLimits
from agent_relay.relay.auth import issue_token
from tests.soak.conftest import SOAK_HOSTS
from tests.support.connector import eventually, running_connector
from tests.support.fakehost import pattern
from tests.support.localserver import local_server
from tests.support.relay import running_relay

MIB = 1024 * 1024
STALLED = 50


async def test_fifty_stalled_clients_are_cut_and_free_the_pool(sqlite_url: str) -> None:
    async with (
        local_server() as local,
        running_relay(sqlite_url, send_timeout=1.0) as relay,
        running_connector(
            relay,
            local.url,
            forward=ForwardLimits(send_timeout=1.0),
            pool_limits=PoolLimits(wait_timeout=5.0),  # 64 connections: 50 fit
        ) as connector,
    ):
        base = await relay.path()
        port = int(relay.url.rsplit(":", 1)[1])
        stalled = []
        for _ in range(STALLED):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {base}/bytes/{64 * MIB} HTTP/1.1\r\nhost: relay\r\n\r\n".encode())
            stalled.append((reader, writer))
        # Each got its answer's head, then stopped reading.
        heads = await asyncio.gather(*(r.readuntil(b"\r\n\r\n") for r, _ in stalled))
        assert all(h.startswith(b"HTTP/1.1 200 ") for h in heads)
        await eventually(lambda: connector.state.active_streams == 0, timeout=30)
        assert connector.pool.in_use == 0
        [tunnel] = relay.service.app.registry.tunnels()
        await eventually(lambda: tunnel.session.num_streams == 0, timeout=10)
        answers = await asyncio.gather(*(relay.client.get(f"{base}/echo") for _ in range(20)))
        assert [a.status_code for a in answers] == [200] * 20
        assert local.bytes_sent < STALLED * 64 * MIB
        for _, writer in stalled:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def test_a_slow_ten_mib_upload_gets_its_answer(sqlite_url: str) -> None:
    # Both hops' response timeouts (1 s) are far shorter than the upload (about 3 s):
    # they count from the body's end, while it flows only the idle timeout applies.
    size, chunk = 10 * MIB, pattern(256 * 1024)
    async with (
        local_server() as local,
        running_relay(sqlite_url, response_timeout=1.0, idle_timeout=5.0) as relay,
        running_connector(relay, local.url, forward=ForwardLimits(response_timeout=1.0)),
    ):
        base = await relay.path()

        async def slowly() -> AsyncIterator[bytes]:
            for _ in range(size // len(chunk)):
                yield chunk
                await asyncio.sleep(0.075)

        started = time.monotonic()
        response = await relay.client.post(f"{base}/upload", content=slowly(), timeout=60)
        took = time.monotonic() - started
        assert response.status_code == 200, response.text
        digest = hashlib.sha256(chunk * (size // len(chunk))).hexdigest()
        assert response.text == f"{size} {digest}"
        assert took > 2.0  # it really was slower than the response timeouts


async def test_a_revoked_host_login_closes_every_tunnel_within_a_second(sqlite_url: str) -> None:
    hosts = min(SOAK_HOSTS, 100)
    async with running_relay(sqlite_url) as relay:
        login = await issue_token(relay.store, relay.secret, relay.user_id, timedelta(hours=1))
        fleet = Fleet(relay.url, login.token, hosts)
        fleet.start()
        try:
            await fleet.wait_connected(60)
            registry = relay.service.app.registry
            assert len(registry.host_ids()) == hosts
            assert await relay.store.revoke_auth_session(login.auth_session_id)
            revoked = time.monotonic()
            while registry.host_ids() and time.monotonic() - revoked < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            took = time.monotonic() - revoked
            print(f"\n{hosts} tunnels of a revoked login closed in {took:.2f} s")
            assert not registry.host_ids()
            # The poll runs once a second; slack for a loaded machine.
            assert took < 1.5
        finally:
            await fleet.stop()

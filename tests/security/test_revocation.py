"""Issue 11 item 9 and issue 15 item 6: a revoke done outside the relay process (as
``agent-relay tokens revoke`` or the remote API do: they only write
``auth_sessions.revoked_at``) cuts new requests, open streams and WebSockets, and the
host control channels of that login within a second; a client that leaves frees its
stream slot at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import timedelta

import pytest

from agent_relay.relay.auth import issue_token
from tests.support.relay import running_relay

CUT_WITHIN = 1.5  # the poll runs every second; a little slack for a loaded machine


async def _raw_upgrade(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path}/upgrade HTTP/1.1\r\nhost: relay\r\nconnection: upgrade\r\n"
        "upgrade: echo\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"PING"
    return reader, writer


async def test_revoke_cuts_requests_streams_and_websockets_within_a_second(
    database_url: str,
) -> None:
    async with running_relay(database_url) as relay:
        host = await relay.host()
        base = await relay.path()
        assert (await relay.client.get(f"{base}/echo")).status_code == 200  # now cached
        port = relay.service.address[1] if relay.service.address else 0
        reader, writer = await _raw_upgrade(port, base)
        long_request = asyncio.create_task(relay.client.get(f"{base}/sleep/30"))
        await asyncio.sleep(0.2)

        [login] = await relay.store.revoke_user_auth_sessions(relay.user_id)
        assert login
        revoked_at = time.monotonic()

        # The open WebSocket ends (EOF or reset) ...
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            async with asyncio.timeout(CUT_WITHIN):
                await reader.readexactly(1)
        # ... and so does the long request, ...
        with pytest.raises(Exception):  # noqa: B017, PT011 (httpx: RemoteProtocolError or ReadError)
            async with asyncio.timeout(CUT_WITHIN - (time.monotonic() - revoked_at)):
                await long_request
        # ... and a new request is refused.
        response = await relay.client.get(f"{base}/echo")
        assert response.status_code == 401, response.text
        assert time.monotonic() - revoked_at < CUT_WITHIN + 0.5
        writer.close()
        long_request.cancel()
        await host.close()


async def test_revoked_host_login_closes_its_control_channel_within_a_second(
    sqlite_url: str,
) -> None:
    async with running_relay(sqlite_url) as relay:
        host_login = await issue_token(relay.store, relay.secret, relay.user_id, timedelta(hours=1))
        host = await relay.host(token=host_login.token)
        await relay.host_id()
        assert host.session is not None
        assert not host.session.closed
        assert await relay.store.revoke_auth_session(host_login.auth_session_id)
        deadline = time.monotonic() + CUT_WITHIN
        while not host.session.closed and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        assert host.session.closed, "the revoked host's tunnel is still up"
        await host.close()


async def test_refusals_are_cached_so_a_revoked_host_costs_no_query_per_attempt(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_relay(sqlite_url) as relay:
        login = await issue_token(relay.store, relay.secret, relay.user_id, timedelta(hours=1))
        assert await relay.store.revoke_auth_session(login.auth_session_id)
        lookups: list[uuid.UUID] = []
        real = relay.store.get_auth_session

        async def counted(session_id: uuid.UUID) -> object:
            lookups.append(session_id)
            return await real(session_id)

        monkeypatch.setattr(relay.store, "get_auth_session", counted)
        for _ in range(20):
            response = await relay.client.get(
                "/v1/relay/connect?machine_id=m", headers=relay.auth(login.token)
            )
            assert response.status_code == 401
        assert lookups.count(login.auth_session_id) <= 1, len(lookups)


async def test_a_client_that_leaves_frees_its_stream_slot_at_once(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, max_streams_per_host=1) as relay:
        host = await relay.host()
        base = await relay.path()
        port = relay.service.address[1] if relay.service.address else 0
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {base}/sleep/30 HTTP/1.1\r\nhost: relay\r\n\r\n".encode())
        await writer.drain()
        await asyncio.sleep(0.3)  # the request holds the host's only slot now
        assert (await relay.client.get(f"{base}/echo")).status_code == 503
        writer.close()
        await asyncio.sleep(0.3)
        response = await relay.client.get(f"{base}/echo")
        assert response.status_code == 200, response.text
        await host.close()


async def test_migration_2_indexes_revoked_logins_for_the_poll(sqlite_url: str) -> None:
    import sqlite3

    from agent_relay.store import Store
    from agent_relay.store.migrations import SCHEMA_VERSION

    store = await Store.open(sqlite_url)
    await store.close()
    path = sqlite_url.removeprefix("sqlite:///")  # the plain sqlite driver for the catalog
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.executescript(  # back to version 1: no index, and no migration 3
            "BEGIN; DROP INDEX ix_auth_sessions_revoked_at; DROP TABLE agent_relay_host_keys;"
            "UPDATE agent_relay_schema_version SET version = 1; COMMIT;"
        )
    store = await Store.open(sqlite_url)
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = {row[1] for row in conn.execute("PRAGMA index_list(auth_sessions)")}
        (version,) = conn.execute("SELECT version FROM agent_relay_schema_version").fetchone()
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert "ix_auth_sessions_revoked_at" in names
    assert "agent_relay_host_keys" in tables  # migration 3 ran after it
    assert version == SCHEMA_VERSION


async def test_a_request_pipelined_while_the_host_thinks_is_answered_after_it(
    sqlite_url: str,
) -> None:
    """The bytes of a next request that arrive while the relay waits on the host stay
    buffered for it: both are answered, in order."""
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        base = await relay.path()
        port = relay.service.address[1] if relay.service.address else 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {base}/sleep/0.3 HTTP/1.1\r\nhost: relay\r\n\r\n".encode())
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(f"GET {base}/echo HTTP/1.1\r\nhost: relay\r\n\r\n".encode())
        await writer.drain()
        for _ in range(2):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            )
            await reader.readexactly(length)
        writer.close()
        await host.close()

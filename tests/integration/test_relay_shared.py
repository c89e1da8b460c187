"""The relay as a drop-in beside the remote API: shared mode on a database made with the
reference DDL, tokens minted as the remote API mints them, no DDL run by the relay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest

from agent_relay.relay.auth import mint_token
from agent_relay.relay.config import RelayConfig
from agent_relay.relay.service import RelayService
from agent_relay.store import HostStatus, Store, StoreMode
from tests.support.fakehost import FakeHost
from tests.support.reference_db import SECRET, ReferenceDatabase


async def test_relay_in_shared_mode_end_to_end(
    reference_database: ReferenceDatabase,
) -> None:
    db = reference_database
    before = db.catalog()
    user_id = db.add_user("dev@example.com")
    auth_session_id = db.add_auth_session(user_id)
    token = mint_token(SECRET, user_id, auth_session_id, timedelta(hours=1))

    store = await Store.open(db.relay_url, mode=StoreMode.SHARED)
    config = RelayConfig(listen_host="127.0.0.1", listen_port=0, jwt_secret=SECRET)
    service = RelayService(config, store)
    await service.start()
    host = FakeHost(service.url, token, "agent-pod")
    try:
        await host.connect()
        async with httpx.AsyncClient(base_url=service.url) as client:
            auth = {"Authorization": f"Bearer {token}"}
            for _ in range(100):
                hosts = (await client.get("/v1/hosts", headers=auth)).json()["hosts"]
                if hosts and hosts[0]["online"]:
                    break
                await asyncio.sleep(0.02)
            host_id = uuid.UUID(hosts[0]["id"])
            created = await client.post(f"/v1/relay/create/{host_id}", headers=auth)
            session_id = created.json()["session_id"]
            response = await client.post(
                f"/v1/relay/h/{host_id}/s/{session_id}/echo", content=b"through the sidecar"
            )
            assert response.status_code == 200
            assert response.content == b"through the sidecar"
        status = db.sql(f"SELECT status FROM hosts WHERE id = '{host_id}'")  # noqa: S608
        assert status.strip() == HostStatus.ONLINE
        # The remote API revokes the login: the relay session dies with it.
        db.sql(f"UPDATE auth_sessions SET revoked_at = now() WHERE id = '{auth_session_id}'")  # noqa: S608
        service.app.forget_all_sessions()
        async with httpx.AsyncClient(base_url=service.url) as client:
            refused = await client.get(f"/v1/relay/h/{host_id}/s/{session_id}/echo")
            assert refused.status_code == 401
    finally:
        await host.close()
        await service.stop()
    assert db.catalog() == before


async def test_replicas_in_shared_mode_need_their_own_tables_only(
    reference_database: ReferenceDatabase,
) -> None:
    """A replica on the remote API's database: without the presence tables (and no right
    to create them) it refuses to start and names the fix; `agent-relay migrate
    --replicas` makes them without touching a table of the remote API's."""
    import dataclasses

    from click.testing import CliRunner

    from agent_relay.cli import main
    from agent_relay.relay.config import ReplicaConfig
    from agent_relay.store import SchemaMismatch

    db = reference_database
    before = db.catalog()
    config = RelayConfig(
        listen_host="127.0.0.1",
        listen_port=0,
        jwt_secret=SECRET,
        database_url=db.relay_url,
        shared_database=True,
        replica=ReplicaConfig(advertise="127.0.0.1:1", listen_host="127.0.0.1", listen_port=0),
    )
    store = await Store.open(db.relay_url, mode=StoreMode.SHARED)
    service = RelayService(config, store)
    try:
        with pytest.raises(SchemaMismatch) as refused:
            await service.start()
    finally:
        await store.close()
    assert "agent-relay migrate --replicas" in str(refused.value)
    assert "agent_relay_replicas" in str(refused.value)
    assert db.catalog() == before  # it tried nothing it may not do

    admin_url = db.cluster.url(db.name)
    # In a thread: the command runs its own event loop.
    done = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["migrate", "--replicas", "--database-url", admin_url, "--grant-to", db.role],
    )
    assert done.exit_code == 0, done.output
    assert "created agent_relay_replicas, agent_relay_presence" in done.output
    again = await asyncio.to_thread(
        CliRunner().invoke, main, ["migrate", "--replicas", "--database-url", admin_url]
    )
    assert again.exit_code == 0
    assert "in place already" in again.output
    after = [line for line in db.catalog().splitlines() if "agent_relay_" not in line]
    assert after == before.splitlines()  # only the relay's own tables are new

    user_id = db.add_user("replica@example.com")
    token = mint_token(SECRET, user_id, db.add_auth_session(user_id), timedelta(hours=1))
    store = await Store.open(db.relay_url, mode=StoreMode.SHARED)
    assert store.host_keys_enabled  # migrate made and granted the host key pins too
    service = RelayService(dataclasses.replace(config), store)
    await service.start()
    host = FakeHost(service.url, token, "replica-pod")
    try:
        await host.connect()
        for _ in range(200):
            held = db.sql("SELECT count(*) FROM agent_relay_presence WHERE replica_id IS NOT NULL")
            if held.strip() == "1":
                break
            await asyncio.sleep(0.02)
        assert held.strip() == "1"
        assert db.sql("SELECT status FROM hosts").strip() == HostStatus.ONLINE
    finally:
        await host.close()
        await service.stop()
    # A clean stop leaves the host offline and the replica's row gone.
    assert db.sql("SELECT status FROM hosts").strip() == HostStatus.OFFLINE
    assert db.sql("SELECT count(*) FROM agent_relay_replicas").strip() == "0"

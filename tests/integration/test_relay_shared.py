"""The relay as a drop-in beside the remote API: shared mode on a database made with the
reference DDL, tokens minted as the remote API mints them, no DDL run by the relay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx

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

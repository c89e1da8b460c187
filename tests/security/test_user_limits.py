"""Issue 11 item 5: per-user caps on hosts and relay sessions, idle expiry of relay
sessions, and unknown session ids answered from a short negative cache."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from websockets.exceptions import InvalidStatus

from agent_relay.relay.limits import UserLimits

from ..integration.test_relay import running_relay


async def test_hosts_per_user_are_capped_but_known_hosts_reconnect(sqlite_url: str) -> None:
    limits = UserLimits(max_hosts_per_user=2)
    async with running_relay(sqlite_url, limits=limits) as relay:
        first = await relay.host("m-1")
        second = await relay.host("m-2")
        with pytest.raises(InvalidStatus) as refused:
            await relay.host("m-3")
        assert refused.value.response.status_code == 403
        assert b"host limit" in refused.value.response.body
        assert len(await relay.store.list_hosts_for_user(relay.user_id)) == 2
        await first.close()
        again = await relay.host("m-1")  # an existing host is never refused
        await relay.host_id("m-1")
        for host in (again, second):
            await host.close()


async def test_relay_sessions_per_user_are_capped_with_429(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, limits=UserLimits(max_sessions_per_user=3)) as relay:
        host = await relay.host()
        host_id = await relay.host_id()
        for _ in range(3):
            await relay.browser_session(host_id)
        response = await relay.client.post(f"/v1/relay/create/{host_id}", headers=relay.auth())
        assert response.status_code == 429
        assert "too many relay sessions" in response.json()["error"]
        await host.close()


async def test_idle_relay_sessions_expire_and_stop_counting(sqlite_url: str) -> None:
    limits = UserLimits(max_sessions_per_user=1, session_idle_timeout=1.0)
    async with running_relay(sqlite_url, limits=limits) as relay:
        host = await relay.host()
        base = await relay.path()
        await asyncio.sleep(1.5)
        relay.service.app.forget_all_sessions()
        response = await relay.client.get(f"{base}/echo")
        assert response.status_code == 401
        assert "expired" in response.json()["error"]
        await relay.path()  # the idle one no longer counts against the cap
        await host.close()


async def test_unknown_session_ids_cost_one_query_not_one_each(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        host_id = await relay.host_id()
        loads: list[uuid.UUID] = []
        real = relay.store.load_proxy_context

        async def counted(session_id: uuid.UUID) -> object:
            loads.append(session_id)
            return await real(session_id)

        monkeypatch.setattr(relay.store, "load_proxy_context", counted)
        guessed = uuid.uuid4()
        for _ in range(20):
            response = await relay.client.get(f"/v1/relay/h/{host_id}/s/{guessed}/echo")
            assert response.status_code == 401
        assert loads == [guessed]
        await host.close()

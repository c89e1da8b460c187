"""A real relay on loopback for tests: the service, its store, a user with a token and
an HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx

from agent_relay.relay.auth import JwtSecret, issue_token
from agent_relay.relay.config import RelayConfig
from agent_relay.relay.service import RelayService
from agent_relay.store import Store

from .fakehost import FakeHost


@dataclass
class Relay:
    service: RelayService
    store: Store
    secret: JwtSecret
    url: str
    token: str
    user_id: uuid.UUID
    client: httpx.AsyncClient

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def host(
        self,
        machine_id: str = "machine-1",
        token: str | None = None,
        *,
        proof: dict[str, str] | None = None,
    ) -> FakeHost:
        host = FakeHost(self.url, token or self.token, machine_id, proof=proof)
        await host.connect()
        return host

    async def host_id(self, machine_id: str = "machine-1") -> uuid.UUID:
        for _ in range(100):
            hosts = (await self.client.get("/v1/hosts", headers=self.auth())).json()["hosts"]
            for host in hosts:
                if host["machine_id"] == machine_id and host["online"]:
                    return uuid.UUID(host["id"])
            await asyncio.sleep(0.02)
        raise AssertionError(f"host {machine_id} never came online")

    async def browser_session(self, host_id: uuid.UUID) -> str:
        response = await self.client.post(f"/v1/relay/create/{host_id}", headers=self.auth())
        assert response.status_code == 200, response.text
        return str(response.json()["session_id"])

    async def path(self, machine_id: str = "machine-1") -> str:
        host_id = await self.host_id(machine_id)
        return f"/v1/relay/h/{host_id}/s/{await self.browser_session(host_id)}"


@contextlib.asynccontextmanager
async def running_relay(database_url: str, /, **options: object) -> AsyncIterator[Relay]:
    secret = JwtSecret.generate()
    config = RelayConfig(listen_host="127.0.0.1", listen_port=0, jwt_secret=secret)
    config = dataclasses.replace(config, **options)  # type: ignore[arg-type]
    store = await Store.open(database_url)
    service = RelayService(config, store)
    await service.start()
    user = await store.add_user("alice")
    issued = await issue_token(store, secret, user.id, timedelta(hours=1))
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        try:
            yield Relay(service, store, secret, service.url, issued.token, user.id, client)
            await assert_nothing_leaked(service)
        finally:
            await service.stop()


async def assert_nothing_leaked(service: RelayService) -> None:
    """Every exchange, good or bad, leaves no stream, request slot or task behind."""
    for _ in range(200):
        tunnels = service.app.registry.tunnels()
        busy = [t for t in tunnels if t.in_flight or t.session.num_streams]
        if not busy and not service.app._background:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"leaked: {[(t.host_id, t.in_flight, t.session.num_streams) for t in busy]}, "
        f"{len(service.app._background)} background tasks"
    )

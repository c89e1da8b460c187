"""Issue 11 item 8: a token of the same user cannot take over that user's host tunnel by
reusing its machine id. The connector proves its host key at connect, the relay pins the
first proven key, and a connect with another key (or none) for that host is refused until
an operator resets the pin."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.exceptions import InvalidStatus

from agent_relay.cli import main
from agent_relay.hostproof import PROOF_HEADER, connect_proof
from agent_relay.relay.auth import issue_token
from agent_relay.trust.keys import public_bytes
from tests.support.connector import eventually, running_connector
from tests.support.localserver import local_server
from tests.support.relay import Relay, running_relay


def proof(
    relay: Relay, key: Ed25519PrivateKey, machine_id: str = "machine-1", **kw: object
) -> dict[str, str]:
    token = str(kw.get("token", relay.token))
    now = float(kw.get("now", time.time()))  # type: ignore[arg-type]
    return connect_proof(key, machine_id=machine_id, token=token, now=now)


async def impostor_token(relay: Relay) -> str:
    """Another login of the same user: what a second device or a leaked token holds."""
    issued = await issue_token(relay.store, relay.secret, relay.user_id, timedelta(hours=1))
    return issued.token


async def refused(relay: Relay, **kw: object) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as caught:
        await relay.host(**kw)  # type: ignore[arg-type]
    return caught.value.response.status_code, bytes(caught.value.response.body)


async def test_an_impostor_without_the_key_cannot_take_over(sqlite_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    async with running_relay(sqlite_url) as relay:
        real = await relay.host(proof=proof(relay, key))
        host_id = await relay.host_id()
        other = await impostor_token(relay)
        status, body = await refused(relay, token=other)  # the reference host's way: no proof
        assert status == 403
        assert b"bound to a host key" in body
        status, body = await refused(
            relay, token=other, proof=proof(relay, Ed25519PrivateKey.generate(), token=other)
        )
        assert status == 403
        assert b"another host key" in body
        # The real host keeps its tunnel and its record.
        assert relay.service.app.registry.get(host_id) is not None
        response = await relay.client.get(f"{await relay.path()}/echo")
        assert response.status_code == 200
        assert (await relay.store.get_host(host_id)).name == "fake"  # type: ignore[union-attr]
        # Its own key, with any of the user's tokens, still connects.
        await real.close()
        again = await relay.host(token=other, proof=proof(relay, key, token=other))
        await relay.host_id()
        await again.close()


async def test_a_proof_is_bound_to_its_token_time_and_machine(sqlite_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    async with running_relay(sqlite_url) as relay:
        other = await impostor_token(relay)
        status, body = await refused(relay, token=other, proof=proof(relay, key))
        assert status == 401
        assert b"does not verify" in body
        status, body = await refused(relay, proof=proof(relay, key, now=time.time() - 3600))
        assert status == 401
        assert b"off the relay's clock" in body
        status, body = await refused(relay, proof=proof(relay, key, machine_id="machine-2"))
        assert status == 401
        half = {PROOF_HEADER: proof(relay, key)[PROOF_HEADER]}
        status, body = await refused(relay, proof=half)
        assert status == 401
        assert b"needs both" in body
        # None of them pinned anything or registered the host.
        assert await relay.store.find_host_id(relay.user_id, "machine-1") is None


async def test_hosts_without_a_pin_still_connect_without_proof(sqlite_url: str) -> None:
    """The reference host proves nothing; until a proven connect pins a key, it works."""
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        host_id = await relay.host_id()
        assert await relay.store.pinned_host_key(host_id) is None
        await host.close()


async def test_reset_key_lets_a_new_key_bind(sqlite_url: str, tmp_path: Path) -> None:
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    async with running_relay(sqlite_url) as relay:
        host = await relay.host(proof=proof(relay, first))
        host_id = await relay.host_id()
        await host.close()
        status, _ = await refused(relay, proof=proof(relay, second))
        assert status == 403
        # The command runs its own event loop: in a thread, as from a shell.
        args = ["hosts", "reset-key", str(host_id), "--database-url", sqlite_url]
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert result.exit_code == 0, result.output
        assert "key binding removed" in result.output
        host = await relay.host(proof=proof(relay, second))
        await relay.host_id()
        assert await relay.store.pinned_host_key(host_id) is not None
        await host.close()
        result = await asyncio.to_thread(CliRunner().invoke, main, ["hosts", "reset-key", "nope"])
        assert result.exit_code != 0
        assert "not a host id" in result.output


async def test_the_real_connector_proves_its_key(sqlite_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    async with (
        running_relay(sqlite_url) as relay,
        local_server() as upstream,
        running_connector(relay, upstream.url, host_key=key) as connector,
    ):
        host_id = await relay.host_id("machine-1")
        pinned = await relay.store.pinned_host_key(host_id)
        assert pinned == base64.b64encode(public_bytes(key)).decode()
        assert connector.state.connected


async def test_the_connector_reports_a_key_refusal(sqlite_url: str) -> None:
    async with running_relay(sqlite_url) as relay, local_server() as upstream:
        key = Ed25519PrivateKey.generate()
        async with running_connector(relay, upstream.url, host_key=key):
            await relay.host_id("machine-1")
        async with running_connector(
            relay, upstream.url, host_key=Ed25519PrivateKey.generate(), wait=False
        ) as connector:
            await eventually(lambda: connector.state.failed_attempts > 0)
            assert "another host key" in (connector.state.last_error or "")

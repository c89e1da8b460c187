"""Security issue item 6: the connector's local page (``--status-listen``) has no login,
so it must answer only requests addressed to this machine (a DNS-rebinding page on
another name cannot mint or read a code, list or revoke clients), refuse what another
site makes the owner's browser send, and keep the pairing code out of the status JSON."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent_relay.host.connector import Connector, ConnectorConfig
from agent_relay.host.status import StatusServer
from agent_relay.host.upstream import UpstreamPool, UpstreamTarget
from agent_relay.tokens import StaticToken
from agent_relay.trust import TrustHost
from agent_relay.trust.store import TrustedClient

EVIL = "rebound.attacker.example"


class Page:
    def __init__(self, trust: TrustHost, port: int, client: httpx.AsyncClient) -> None:
        self.trust = trust
        self.port = port
        self.client = client


async def _serve(tmp_path: Path, **options: object) -> AsyncIterator[Page]:
    trust = TrustHost.open(tmp_path / "host")
    connector = Connector(
        ConnectorConfig(relay_url="http://127.0.0.1:9", machine_id="m-1", name="laptop"),
        StaticToken("t"),
        UpstreamPool(UpstreamTarget.parse("http://127.0.0.1:9")),
        trust=trust,
    )
    server = StatusServer(connector.snapshot, trust=trust, **options)  # type: ignore[arg-type]
    _, port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield Page(trust, port, client)
    finally:
        await server.stop()


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    async for running in _serve(tmp_path):
        yield running


def _paired(trust: TrustHost) -> str:
    trust.store.add(TrustedClient("c-1", "phone", "Chrome", "Android", "Pixel", "A" * 43 + "="))
    trust.sync()
    return "c-1"


async def test_a_rebound_host_name_can_do_nothing(page: Page) -> None:
    client_id = _paired(page.trust)
    evil = {"host": f"{EVIL}:{page.port}", "origin": f"http://{EVIL}:{page.port}"}
    for method, path in [
        ("GET", "/_relay/"),
        ("GET", "/_relay/status"),
        ("GET", "/_relay/clients"),
        ("POST", "/_relay/pair-code"),
        ("POST", f"/_relay/clients/{client_id}/revoke"),
    ]:
        answer = await page.client.request(method, path, headers=evil)
        assert answer.status_code == 421, (method, path, answer.text)
        assert "error" in answer.json()
    assert page.trust.current_code(time.time()) is None
    assert [c.client_id for c in page.trust.list_clients()] == [client_id]


async def test_loopback_names_are_served(page: Page) -> None:
    for name in ("127.0.0.1", "localhost", "[::1]", "LocalHost"):
        answer = await page.client.get("/_relay/status", headers={"host": f"{name}:{page.port}"})
        assert answer.status_code == 200, name
    assert (await page.client.get("/_relay/", headers={"host": "localhost"})).status_code == 200


async def test_configured_names_are_served_too(tmp_path: Path) -> None:
    async for page in _serve(tmp_path, allowed_hosts=["laptop.lan"]):
        good = await page.client.get("/_relay/", headers={"host": f"laptop.lan:{page.port}"})
        assert good.status_code == 200
        bad = await page.client.get("/_relay/", headers={"host": f"other.lan:{page.port}"})
        assert bad.status_code == 421


async def test_the_status_json_never_holds_the_code(page: Page) -> None:
    code = page.trust.issue_code(time.time()).code
    answer = await page.client.get("/_relay/status")
    assert code not in answer.text
    assert answer.json()["trust"]["enrollment_code_active"] is True


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://attacker.example", "content-type": "text/plain"},
        {"sec-fetch-site": "cross-site", "content-type": "application/x-www-form-urlencoded"},
        {"sec-fetch-site": "same-site"},
        {"origin": "null"},
    ],
)
async def test_cross_site_posts_are_refused(page: Page, headers: dict[str, str]) -> None:
    client_id = _paired(page.trust)
    minted = await page.client.post("/_relay/pair-code", headers=headers, content=b"x")
    assert minted.status_code == 403
    revoked = await page.client.post(f"/_relay/clients/{client_id}/revoke", headers=headers)
    assert revoked.status_code == 403
    assert page.trust.current_code(time.time()) is None
    assert [c.client_id for c in page.trust.list_clients()] == [client_id]


async def test_the_pages_own_forms_work(page: Page) -> None:
    client_id = _paired(page.trust)
    same = {
        "origin": f"http://127.0.0.1:{page.port}",
        "sec-fetch-site": "same-origin",
        "content-type": "application/x-www-form-urlencoded",
    }
    minted = await page.client.post("/_relay/pair-code", headers=same)
    assert minted.status_code == 303
    assert page.trust.current_code(time.time()) is not None
    revoked = await page.client.post(f"/_relay/clients/{client_id}/revoke", headers=same)
    assert revoked.status_code == 303
    assert page.trust.list_clients() == []

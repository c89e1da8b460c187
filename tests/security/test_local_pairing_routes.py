"""Issue 11 item 6 (protect()): the local, not relayed, pairing routes of the ASGI
middleware have no login, so they answer only requests addressed to a loopback name (or
one configured) and refuse what another site made a browser send: a DNS-rebinding page
cannot mint or read a code, and a cross-site ``text/plain`` POST can neither mint nor
burn one. The connector's own local page has the same rule (test_status_page.py)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent_relay.trust import TrustMiddleware, protect
from agent_relay.trust.host import API_PREFIX
from tests.support.trust_app import sample_app, serving
from tests.support.trustpeer import Pairing

EVIL = "rebound.attacker.example"
CODE = API_PREFIX + "enrollment-code"
START = API_PREFIX + "spake2/start"


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, TrustMiddleware]]:
    app = protect(sample_app(), data_dir=tmp_path / "data", allowed_hosts=["agent.lan"])
    async with (
        serving(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client,
    ):
        yield client, app


def cross_site() -> dict[str, str]:
    return {
        "origin": "https://attacker.example",
        "sec-fetch-site": "cross-site",
        "content-type": "text/plain",
    }


async def test_a_rebound_host_name_cannot_mint_a_code(
    local: tuple[httpx.AsyncClient, TrustMiddleware],
) -> None:
    client, app = local
    refused = await client.post(CODE, headers={"host": EVIL})
    assert refused.status_code == 421, refused.text
    assert refused.json()["reason"] == "wrong_host"
    assert app.host.current_code(time.time()) is None
    listed = await client.get(API_PREFIX + "clients", headers={"host": f"{EVIL}:8080"})
    assert listed.status_code == 421


async def test_a_cross_site_text_plain_post_neither_mints_nor_burns_a_code(
    local: tuple[httpx.AsyncClient, TrustMiddleware],
) -> None:
    client, app = local
    minted = await client.post(CODE, content=b"{}", headers=cross_site())
    assert minted.status_code == 403, minted.text
    assert minted.json()["reason"] == "cross_site"
    assert app.host.current_code(time.time()) is None
    # The owner makes a code; a cross-site page tries to use it up with a real start.
    code = app.host.issue_code(time.time()).code
    start = json.dumps(Pairing(code).start_body()).encode()
    burned = await client.post(START, content=start, headers=cross_site())
    assert burned.status_code == 403
    current = app.host.current_code(time.time())
    assert current is not None
    assert current.code == code
    # Only the Origin header (an older browser): refused as well.
    only_origin = await client.post(CODE, headers={"origin": "http://attacker.example"})
    assert only_origin.status_code == 403


async def test_the_owners_own_calls_still_work(
    local: tuple[httpx.AsyncClient, TrustMiddleware],
) -> None:
    client, _ = local
    assert (await client.post(CODE)).status_code == 200  # a tool: no Origin at all
    origin = f"http://{client.base_url.host}:{client.base_url.port}"
    same = await client.post(CODE, headers={"origin": origin, "sec-fetch-site": "same-origin"})
    assert same.status_code == 200, same.text
    named = await client.post(CODE, headers={"host": "agent.lan:8000"})  # configured
    assert named.status_code == 200, named.text
    assert (
        await client.get(API_PREFIX + "clients", headers={"host": "localhost"})
    ).status_code == 200
    # Relayed requests are the trust layer's, signed: not subject to the local rule.
    relayed = await client.post(CODE, headers={"host": EVIL, "x-vk-relayed": "1"})
    assert relayed.status_code == 403
    assert relayed.json()["reason"] == "local_only"

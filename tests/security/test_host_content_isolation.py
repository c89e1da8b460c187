"""Security issue item 1: a host's answer must not act on the relay's origin. Every
proxied answer is sandboxed, never sniffed, not embeddable elsewhere, and sets no cookie;
the client's cookies for the relay's origin never reach a host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_relay.relay.isolation import Isolation
from tests.support.fakehost import FakeHost
from tests.support.relay import Relay, running_relay


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with running_relay(f"sqlite:///{tmp_path / 'relay.sqlite3'}") as running:
        yield running


@pytest.fixture
async def host(relay: Relay) -> AsyncIterator[FakeHost]:
    connected = await relay.host()
    yield connected
    await connected.close()


async def test_a_hosts_page_is_sandboxed_and_cannot_weaken_it(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    answer = await relay.client.get(f"{base}/page")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html"  # the host's own, untouched
    assert answer.headers.get_list("content-security-policy") == ["sandbox"]
    assert answer.headers.get_list("x-content-type-options") == ["nosniff"]
    assert answer.headers.get_list("cross-origin-resource-policy") == ["same-origin"]
    assert "set-cookie" not in answer.headers
    assert not relay.client.cookies


async def test_every_proxied_answer_is_sandboxed_errors_too(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    for path in ("/echo", "/status/404", "/status/500", "/bytes/100000"):
        answer = await relay.client.get(f"{base}{path}")
        assert answer.headers["content-security-policy"] == "sandbox", path
        assert answer.headers["x-content-type-options"] == "nosniff", path


async def test_the_clients_cookies_never_reach_the_host(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    answer = await relay.client.get(
        f"{base}/headers", headers={"cookie": "authentik_session=secret; other=1"}
    )
    seen = answer.json()["headers"]
    assert "cookie" not in seen
    assert not any(b"secret" in v for _, v in host.requests[-1].headers)


async def test_the_sandbox_is_off_only_when_configured(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    async with running_relay(url, host_content_sandbox=False) as relay:
        connected = await relay.host()
        try:
            answer = await relay.client.get(f"{await relay.path()}/page")
        finally:
            await connected.close()
    assert "content-security-policy" not in answer.headers
    # What always holds: no cookie either way, never sniffed.
    assert "set-cookie" not in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_resource_policy_takes_only_the_standard_values() -> None:
    assert Isolation(resource_policy="same-site").response_headers([])[1] == (
        b"cross-origin-resource-policy",
        b"same-site",
    )
    with pytest.raises(ValueError, match="Cross-Origin-Resource-Policy"):
        Isolation(resource_policy="anyone")

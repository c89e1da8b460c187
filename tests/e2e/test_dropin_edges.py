"""The reference's limits and manners, on ours+ours and both mixed pairings, in front of
edgeserver.py: 70 KB heads both ways, a 70 s upstream, a stalled body cut by the idle
timeout, OPTIONS answered by the relay (never forwarded), /ready."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest

from .dropin import running_pairing
from .stack import Stack, report

pytestmark = pytest.mark.timeout(240)

EDGE_PAIRINGS = ("our-relay+our-connector", "our-relay+ref-host", "ref-relay+our-connector")
BIG = 70_000  # bytes: a head the reference passes
SLOW = 70.0  # seconds: past the old 55 s (connector) and 60 s (relay) limits
IDLE = 3  # seconds: our relay's --idle-timeout here


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    with contextlib.ExitStack() as exits:
        yield {
            pairing: exits.enter_context(
                running_pairing(
                    tmp_path_factory.mktemp("edges"),
                    pairing,
                    relay_args=("--idle-timeout", str(IDLE)),
                    edge=True,
                )
            )
            for pairing in EDGE_PAIRINGS
        }


@pytest.fixture(params=EDGE_PAIRINGS)
def stack(request: pytest.FixtureRequest, stacks: dict[str, Stack]) -> Stack:
    return stacks[request.param]


async def test_a_70_kb_request_head_passes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as api:
        response = await api.get("/echo-head", headers={"x-big": "a" * BIG})
    assert response.status_code == 200, response.text
    assert response.json()["head_bytes"] > BIG
    assert response.json()["relayed"] == "1"


async def test_a_70_kb_response_head_passes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as api:
        response = await api.get(f"/big-head?bytes={BIG}")
    assert response.status_code == 200, response.text
    assert len(response.headers["x-big"]) == BIG
    assert response.content == b"ok"


async def test_options_is_answered_by_the_relay_never_forwarded(stack: Stack) -> None:
    origin = {"Origin": "https://ui.example"}
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as api:
        bare = await api.options("/anything", headers=origin)
        preflight = await api.options(
            "/anything", headers={**origin, "Access-Control-Request-Method": "PUT"}
        )
        seen = await api.get("/options-seen")
    for answer in (bare, preflight):
        assert (answer.status_code, answer.content) == (200, b"")
        assert answer.headers["access-control-allow-origin"] == "https://ui.example"
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert "origin" in answer.headers["vary"].lower()
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert seen.text == "0"  # the local server never saw one


async def test_ready_and_health(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.relay_url, timeout=10) as api:
        health = await api.get("/health")
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        if stack.relay.name == "relay":  # ours: the reference has no /ready
            ready = await api.get("/ready")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "database": "ok", "accepting_tunnels": True}


async def test_a_70_second_upstream_gets_through_everywhere(stacks: dict[str, Stack]) -> None:
    """Agents wait on models and long polls: no timeout of ours cuts a 70 s answer."""

    async def slow(stack: Stack) -> tuple[int, bytes, float]:
        began = time.monotonic()
        async with httpx.AsyncClient(base_url=stack.base, timeout=SLOW + 60) as api:
            response = await api.get(f"/slow?seconds={SLOW}")
        return response.status_code, response.content, time.monotonic() - began

    results = await asyncio.gather(*(slow(stacks[p]) for p in EDGE_PAIRINGS))
    for pairing, (status, body, seconds) in zip(EDGE_PAIRINGS, results, strict=True):
        report(f"{pairing}: a {SLOW:.0f} s upstream answered {status} after {seconds:.1f} s")
        assert (status, body) == (200, b"slow ok"), pairing


async def test_a_stalled_body_is_still_cut_by_the_idle_timeout(stacks: dict[str, Stack]) -> None:
    """Minutes for an answer to start, but a body that stops moving is cut (our relay)."""
    stack = stacks["our-relay+our-connector"]
    began = time.monotonic()
    received: list[bytes] = []

    async def read_all() -> None:
        async with (
            httpx.AsyncClient(base_url=stack.base, timeout=60) as api,
            api.stream("GET", "/stall") as response,
        ):
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                received.append(chunk)

    with pytest.raises(httpx.RemoteProtocolError):
        await read_all()
    seconds = time.monotonic() - began
    assert b"".join(received) == b"hello"
    assert IDLE <= seconds < IDLE + 10, seconds

"""Both trust adapters are one core: every admission case, sent through the real relay to
the connector's built-in trust layer and to a local server under ``protect()``, gets the
same answer from each (status, reason and body, byte for byte; the answers that carry
fresh randomness — a new session id, a SPAKE2 message — are compared by shape)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from agent_relay.trust import wire
from agent_relay.trust.host import API_PREFIX
from agent_relay.trust.limits import TrustLimits

from ..trustpeer import Pairing, Peer
from .test_trust_e2e import Stack, trust_stack

SESSION_TTL = 4.0
LIMITS = TrustLimits(session_ttl=SESSION_TTL, body_limit=4096)

Outcome = tuple[Any, ...]


def outcome(response: httpx.Response, *, shape: bool = False) -> Outcome:
    """What must agree: status, and the body (its JSON keys only when ``shape``)."""
    if shape:
        data = response.json()
        inner = data.get("data")
        return (
            response.status_code,
            sorted(data),
            sorted(inner) if isinstance(inner, dict) else inner,
        )
    return (response.status_code, response.headers.get("content-type"), response.content)


async def pair(client: httpx.AsyncClient, base: str, stack: Stack) -> tuple[Peer, list[Outcome]]:
    seen: list[Outcome] = []
    # No code active yet: the pairing start is refused.
    early = await client.post(
        f"{base}{API_PREFIX}spake2/start", json=Pairing("AAAAAA").start_body()
    )
    seen.append(outcome(early))
    bad = await client.post(f"{base}{API_PREFIX}spake2/start", content=b"not json")
    seen.append(outcome(bad))
    code = stack.host.issue_code(time.time()).code
    pairing = Pairing(code)
    start = await client.post(f"{base}{API_PREFIX}spake2/start", json=pairing.start_body())
    seen.append(outcome(start, shape=True))
    peer = Peer()
    finish = await client.post(
        f"{base}{API_PREFIX}spake2/finish", json=peer.finish_body(pairing, start.json()["data"])
    )
    seen.append(outcome(finish, shape=True))
    peer.accept_finish(finish.json()["data"])
    return peer, seen


async def run_cases(stack: Stack) -> list[Outcome]:
    relay = stack.relay
    base = await relay.path()
    client = relay.client
    seen: list[Outcome] = []

    async def send(
        method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await client.request(method, f"{base}{target}", content=body, headers=headers)

    # Pairing routes (also the local-only one, refused through the relay).
    seen.append(outcome(await send("POST", f"{API_PREFIX}enrollment-code")))
    peer, pairing = await pair(client, base, stack)
    seen += pairing
    now = int(time.time())
    # Missing and partial signature headers.
    seen.append(outcome(await send("GET", "/echo")))
    partial = peer.sign("GET", "/echo", b"", now)
    del partial[wire.SIG_SIGNATURE]
    seen.append(outcome(await send("GET", "/echo", headers=partial)))
    partial = peer.sign("GET", "/echo", b"", now)
    del partial[wire.SIG_TS]
    seen.append(outcome(await send("GET", "/echo", headers=partial)))
    # Clock skew, both ways.
    seen.append(
        outcome(await send("GET", "/echo", headers=peer.sign("GET", "/echo", b"", now - 3600)))
    )
    seen.append(
        outcome(await send("GET", "/echo", headers=peer.sign("GET", "/echo", b"", now + 3600)))
    )
    # A good request: the same answer (its verified body).
    body = b'{"hello":"world"}'
    headers = peer.sign("POST", "/echo?x=1", body, now)
    good = await send("POST", "/echo?x=1", body, headers=headers)
    verified = peer.check_response(
        200, dict(good.headers), good.content, "/echo?x=1", headers[wire.SIG_NONCE]
    )
    seen.append((good.status_code, json.loads(verified)["body"], json.loads(verified)["query"]))
    # The same request again: a replayed nonce.
    seen.append(outcome(await send("POST", "/echo?x=1", body, headers=headers)))
    # A bad signature (the body was changed on the way).
    seen.append(
        outcome(
            await send("POST", "/echo", b"evil", headers=peer.sign("POST", "/echo", b"mine", now))
        )
    )
    # A body over the limit.
    big = b"x" * 5000
    seen.append(
        outcome(await send("POST", "/echo", big, headers=peer.sign("POST", "/echo", big, now)))
    )
    # A signed pairing route (the clients list) and an unknown one.
    listed = await send(
        "GET", f"{API_PREFIX}clients", headers=peer.sign("GET", f"{API_PREFIX}clients", b"", now)
    )
    seen.append(outcome(listed, shape=True))
    missing = f"{API_PREFIX}nothing"
    seen.append(outcome(await send("GET", missing, headers=peer.sign("GET", missing, b"", now))))
    # WebSocket upgrades: a signature in the query, good and tampered.
    ws_base = relay.url.replace("http://", "ws://") + base
    target, _ = peer.signed_query("/terminal", now)
    async with ws_connect(f"{ws_base}{target}") as ws:
        seen.append(("ws", ws.response.status_code if ws.response else None))
    tampered, _ = peer.signed_query("/terminal", now, x="1")
    tampered = tampered.replace("x=1", "x=2")
    try:
        async with ws_connect(f"{ws_base}{tampered}"):
            seen.append(("ws", "accepted"))
    except InvalidStatus as exc:
        seen.append(("ws", exc.response.status_code, exc.response.body))
    try:
        async with ws_connect(f"{ws_base}/terminal"):
            seen.append(("ws", "accepted"))
    except InvalidStatus as exc:
        seen.append(("ws", exc.response.status_code, exc.response.body))
    # A session past its life, then a refresh and a good request on the new session.
    await asyncio.sleep(SESSION_TTL + 1)
    now = int(time.time())
    seen.append(outcome(await send("GET", "/echo", headers=peer.sign("GET", "/echo", b"", now))))
    refresh = f"{API_PREFIX}signing-session/refresh"
    bad_refresh = peer.refresh_body(now)
    bad_refresh["signature_b64"] = wire.b64encode(b"\x00" * 64)
    seen.append(outcome(await client.post(f"{base}{refresh}", json=bad_refresh)))
    renewed = await client.post(f"{base}{refresh}", json=peer.refresh_body(now))
    seen.append(outcome(renewed, shape=True))
    peer.session_id = renewed.json()["data"]["signing_session_id"]
    again = await send("GET", "/echo", headers=peer.sign("GET", "/echo", b"", now))
    seen.append((again.status_code, again.headers.get(wire.RESP_SIGNATURE) is not None))
    return seen


async def test_both_adapters_answer_every_admission_case_alike(tmp_path: Path) -> None:
    answers: dict[str, list[Outcome]] = {}
    for mode in ("connector", "asgi"):
        (tmp_path / mode).mkdir()
        database = f"sqlite:///{tmp_path / mode / 'relay.sqlite3'}"
        async with trust_stack(tmp_path / mode, database, mode, limits=LIMITS) as stack:
            answers[mode] = await run_cases(stack)
    connector, asgi = answers["connector"], answers["asgi"]
    assert len(connector) == len(asgi) == 23
    for index, (a, b) in enumerate(zip(connector, asgi, strict=True)):
        assert a == b, f"case {index}: connector {a!r} != asgi {b!r}"
    # The cases are what they claim to be (not all one answer).
    reasons = {
        json.loads(o[2]).get("reason")
        for o in connector
        if len(o) == 3 and isinstance(o[2], bytes) and o[2].startswith(b"{")
    }
    assert {
        "missing_signature",
        "clock_skew",
        "replayed_nonce",
        "bad_signature",
        "too_large",
        "local_only",
        "session_expired",
    } <= reasons, reasons
    upgrades = [o for o in connector if o[0] == "ws"]
    assert upgrades[0] == ("ws", 101)
    assert all(o[1] in (401, 403) for o in upgrades[1:]), upgrades

"""The trust layer built into the connector, in front of a server that knows nothing of
signatures, through the real relay: pairing, signed calls, streamed bodies, signed
WebSocket frames, and a revocation from another process closing a live socket."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent_relay.host import (
    BackoffPolicy,
    Connector,
    ConnectorConfig,
    StaticToken,
    UpstreamPool,
    UpstreamTarget,
)
from agent_relay.trust import TrustHost, wire
from agent_relay.trust.host import API_PREFIX
from tests.support.relay import Relay, running_relay
from tests.support.trust_app import BIG, SLOW, sample_app, serving
from tests.support.trustpeer import Pairing, Peer, SignatureMismatch

FAST = BackoffPolicy(base=0.05, cap=0.2, reset_after=60.0)


@contextlib.asynccontextmanager
async def trusted_connector(
    relay: Relay, upstream: str, data_dir: Path
) -> AsyncIterator[Connector]:
    pool = UpstreamPool(UpstreamTarget.parse(upstream))
    config = ConnectorConfig(relay_url=relay.url, machine_id="machine-1", name="trusted")
    config = dataclasses.replace(config, backoff=FAST)
    connector = Connector(config, StaticToken(relay.token), pool, trust=TrustHost.open(data_dir))
    running = asyncio.create_task(connector.run())
    try:
        for _ in range(500):
            if connector.state.connected:
                break
            await asyncio.sleep(0.01)
        assert connector.state.connected
        yield connector
    finally:
        await connector.stop(timeout=5)
        await running
        await pool.close()


@pytest.fixture
async def setup(sqlite_url: str, tmp_path: Path) -> AsyncIterator[tuple[Relay, Connector, str]]:
    async with (
        running_relay(sqlite_url) as relay,
        serving(sample_app()) as upstream,
        trusted_connector(relay, f"http://{upstream}", tmp_path / "host") as connector,
    ):
        yield relay, connector, await relay.path()


async def pair_through_relay(relay: Relay, base: str, data_dir: Path) -> Peer:
    # The owner makes a code locally (what `agent-relay host pair-code` does).
    code = TrustHost.open(data_dir).issue_code(time.time()).code
    pairing = Pairing(code)
    start = await relay.client.post(f"{base}{API_PREFIX}spake2/start", json=pairing.start_body())
    assert start.status_code == 200, start.text
    peer = Peer()
    finish = await relay.client.post(
        f"{base}{API_PREFIX}spake2/finish", json=peer.finish_body(pairing, start.json()["data"])
    )
    assert finish.status_code == 200, finish.text
    peer.accept_finish(finish.json()["data"])
    return peer


def now() -> int:
    return int(time.time())


async def test_pairing_and_signed_calls_through_the_relay(
    setup: tuple[Relay, Connector, str], tmp_path: Path
) -> None:
    relay, connector, base = setup
    refused = await relay.client.get(f"{base}/echo")
    assert refused.status_code == 401
    assert refused.json()["reason"] == "missing_signature"
    assert abs(int(refused.headers[wire.HOST_TIME]) - now()) <= 2
    code = await relay.client.post(f"{base}{API_PREFIX}enrollment-code")
    assert (code.status_code, code.json()["reason"]) == (403, "local_only")

    peer = await pair_through_relay(relay, base, tmp_path / "host")
    assert connector.snapshot()["trust"]["paired_clients"] == 1
    body = json.dumps({"hello": "world"}).encode()
    headers = peer.sign("POST", "/echo?x=1", body, now())
    answer = await relay.client.post(f"{base}/echo?x=1", content=body, headers=headers)
    assert answer.status_code == 200
    got = peer.check_response(
        200, dict(answer.headers), answer.content, "/echo?x=1", headers[wire.SIG_NONCE]
    )
    assert got == body
    replayed = await relay.client.post(f"{base}/echo?x=1", content=body, headers=headers)
    assert replayed.json()["reason"] == "replayed_nonce"
    headers = peer.sign("POST", "/echo", b"mine", now())
    tampered = await relay.client.post(f"{base}/echo", content=b"evil", headers=headers)
    assert tampered.json()["reason"] == "bad_signature"
    # A response swapped by the relay does not verify for another request.
    first = peer.sign("GET", "/echo", b"", now())
    second = peer.sign("GET", "/echo", b"", now())
    a = await relay.client.get(f"{base}/echo", headers=first)
    with pytest.raises(SignatureMismatch):
        peer.check_response(200, dict(a.headers), a.content, "/echo", second[wire.SIG_NONCE])

    # Big download and server-sent events: signed records.
    headers = {**peer.sign("GET", "/big", b"", now()), wire.ACCEPT_STREAM_SIGNING: "1"}
    big = await relay.client.get(f"{base}/big", headers=headers)
    assert big.headers[wire.RESP_BODY_SIGNING] == wire.STREAM_SIGNING_V1
    assert (
        peer.check_response(200, dict(big.headers), big.content, "/big", headers[wire.SIG_NONCE])
        == BIG
    )
    headers = {**peer.sign("GET", "/events", b"", now()), wire.ACCEPT_STREAM_SIGNING: "1"}
    async with relay.client.stream("GET", f"{base}/events", headers=headers) as response:
        received = b""
        async for chunk in response.aiter_raw():
            received += chunk
            if not received.endswith(b"\n\n") and len(received) > 4 + 9 + 64:
                break  # the first record arrived before the stream ended
        assert (
            len(
                peer.records(
                    received,
                    headers[wire.SIG_NONCE],
                    response.headers[wire.RESP_NONCE],
                    require_end=False,
                )
            )
            >= 1
        )


async def test_signed_websocket_and_revocation_by_the_cli(
    setup: tuple[Relay, Connector, str], tmp_path: Path
) -> None:
    relay, _, base = setup
    peer = await pair_through_relay(relay, base, tmp_path / "host")
    ws_base = relay.url.replace("http://", "ws://") + base
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(f"{ws_base}/terminal"):
            pass
    assert caught.value.response.status_code == 401
    target, nonce = peer.signed_query("/terminal", now(), cols="80")
    async with ws_connect(f"{ws_base}{target}") as ws:
        await ws.send(peer.frame(1, nonce, "text", b"hello"))
        assert peer.open_frame(1, nonce, await asyncio.wait_for(ws.recv(), 5)) == (
            "text",
            b"echo:hello",
        )
        await ws.send(peer.frame(2, nonce, "binary", b"\x00" * 100_000))
        assert peer.open_frame(2, nonce, await asyncio.wait_for(ws.recv(), 5)) == (
            "binary",
            b"\x00" * 100_000,
        )
        # Another process (the CLI) revokes the client: the socket closes within ~1 s.
        assert TrustHost.open(tmp_path / "host").revoke(peer.client_id)
        msg_type, payload = peer.open_frame(3, nonce, await asyncio.wait_for(ws.recv(), 5))
        assert msg_type == "close"
        assert payload[:2] == (1008).to_bytes(2, "big")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    headers = peer.sign("GET", "/echo", b"", now())
    assert (await relay.client.get(f"{base}/echo", headers=headers)).json()[
        "reason"
    ] == "client_revoked"


async def test_reordered_websocket_frames_close_the_socket(
    setup: tuple[Relay, Connector, str], tmp_path: Path
) -> None:
    relay, _, base = setup
    peer = await pair_through_relay(relay, base, tmp_path / "host")
    target, nonce = peer.signed_query("/terminal", now())
    async with ws_connect(relay.url.replace("http://", "ws://") + base + target) as ws:
        await ws.send(peer.frame(2, nonce, "text", b"skipped one"))
        msg_type, _ = peer.open_frame(1, nonce, await asyncio.wait_for(ws.recv(), 5))
        assert msg_type == "close"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1008


async def test_guessing_the_code_through_the_relay_cannot_succeed(
    setup: tuple[Relay, Connector, str], tmp_path: Path
) -> None:
    """One SPAKE2 run per code: the first guess uses the code up, every later one finds
    none. Polling costs the attacker nothing, so the owner's next code still pairs."""
    relay, _, base = setup
    real = TrustHost.open(tmp_path / "host").issue_code(time.time()).code
    outcomes: dict[str, int] = {}
    for i in range(60):
        guess = f"{i:06d}"
        if guess == real:
            continue
        pairing = Pairing(guess)
        start = await relay.client.post(
            f"{base}{API_PREFIX}spake2/start", json=pairing.start_body(send_code=i % 2 == 0)
        )
        if start.status_code == 200:
            peer = Peer()
            body = peer.finish_body(pairing, start.json()["data"])
            finish = await relay.client.post(f"{base}{API_PREFIX}spake2/finish", json=body)
            reason = finish.json()["reason"]
        else:
            reason = start.json()["reason"]
        outcomes[reason] = outcomes.get(reason, 0) + 1
    assert outcomes == {"bad_code": 1, "code_expired": 59} or outcomes == {
        "bad_proof": 1,
        "code_expired": 59,
    }
    owner = await pair_through_relay(relay, base, tmp_path / "host")
    headers = owner.sign("GET", "/echo", b"", now())
    assert (await relay.client.get(f"{base}/echo", headers=headers)).status_code == 200


async def test_revocation_cuts_a_signed_stream(
    setup: tuple[Relay, Connector, str], tmp_path: Path
) -> None:
    relay, _, base = setup
    peer = await pair_through_relay(relay, base, tmp_path / "host")
    headers = {**peer.sign("GET", "/forever", b"", now()), wire.ACCEPT_STREAM_SIGNING: "1"}
    received = bytearray()
    nonces: list[str] = []

    async def read_and_revoke() -> None:
        revoked = False
        async with relay.client.stream("GET", f"{base}/forever", headers=headers) as response:
            nonces.append(response.headers[wire.RESP_NONCE])
            async for chunk in response.aiter_raw():
                received.extend(chunk)
                if len(received) > 3 * (4 + 14 + 64) and not revoked:
                    revoked = TrustHost.open(tmp_path / "host").revoke(peer.client_id)

    with pytest.raises(httpx.RemoteProtocolError):  # cut off, before any end record
        await asyncio.wait_for(read_and_revoke(), 10)
    request_nonce = headers[wire.SIG_NONCE]
    records = peer.records(bytes(received), request_nonce, nonces[0], require_end=False)
    assert records
    assert all(r == b"data: tick\n\n" for r in records)
    with pytest.raises(SignatureMismatch):
        peer.records(bytes(received), request_nonce, nonces[0], require_end=True)


@pytest.mark.parametrize("path", ["/slow", "/drip"])
async def test_a_request_in_flight_when_its_client_is_revoked_is_answered_401(
    setup: tuple[Relay, Connector, str], tmp_path: Path, path: str
) -> None:
    relay, _, base = setup
    peer = await pair_through_relay(relay, base, tmp_path / "host")
    headers = peer.sign("GET", path, b"", now())
    pending = asyncio.create_task(relay.client.get(f"{base}{path}", headers=headers))
    await asyncio.sleep(0.3)  # admitted; the local server thinks (/slow) or dribbles
    # Revoked by another process: the connector picks it up within its 1 s check, while
    # the local server still thinks or the connector still reads the answer to sign it
    # whole (/drip), so nothing of the answer has gone out yet.
    assert TrustHost.open(tmp_path / "host").revoke(peer.client_id)
    answer = await asyncio.wait_for(pending, SLOW + 10)
    assert answer.status_code == 401, answer.text  # not a stream cut off (502)
    assert answer.json()["reason"] == "client_revoked"

"""``protect(app)`` around a small Starlette app on uvicorn, over real loopback sockets:
pairing, signed requests and answers, streamed bodies, signed WebSocket frames and
revocation of a live socket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent_relay.trust import TrustLimits, TrustMiddleware, protect, wire
from agent_relay.trust.host import API_PREFIX
from tests.support.trust_app import BIG, sample_app, serving
from tests.support.trustpeer import Pairing, Peer, SignatureMismatch

RELAYED = {"x-vk-relayed": "1"}


@pytest.fixture
async def protected(tmp_path: Path) -> AsyncIterator[tuple[str, TrustMiddleware]]:
    app = protect(sample_app(), data_dir=tmp_path / "data")
    async with serving(app) as address:
        yield address, app


async def pair_over_http(client: httpx.AsyncClient, app: TrustMiddleware) -> Peer:
    code = await client.post(API_PREFIX + "enrollment-code")  # local: no x-vk-relayed
    assert code.status_code == 200
    pairing = Pairing(code.json()["data"]["enrollment_code"])
    start = await client.post(
        API_PREFIX + "spake2/start", json=pairing.start_body(), headers=RELAYED
    )
    assert start.status_code == 200, start.text
    peer = Peer()
    finish = await client.post(
        API_PREFIX + "spake2/finish",
        json=peer.finish_body(pairing, start.json()["data"]),
        headers=RELAYED,
    )
    assert finish.status_code == 200, finish.text
    peer.accept_finish(finish.json()["data"])
    assert (
        wire.b64encode(wire.b64decode(app.host.public_key_b64))
        == finish.json()["data"]["server_public_key_b64"]
    )
    return peer


def now() -> int:
    return int(time.time())


async def test_signed_requests_and_answers(protected: tuple[str, TrustMiddleware]) -> None:
    address, app = protected
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
        # Local requests pass untouched; relayed ones need a signature.
        assert (await client.get("/whoami")).status_code == 200
        refused = await client.get("/whoami", headers=RELAYED)
        assert refused.status_code == 401
        assert refused.json()["reason"] == "missing_signature"
        assert abs(int(refused.headers[wire.HOST_TIME]) - now()) <= 2
        relayed_code = await client.post(API_PREFIX + "enrollment-code", headers=RELAYED)
        assert (relayed_code.status_code, relayed_code.json()["reason"]) == (403, "local_only")

        peer = await pair_over_http(client, app)
        body = b"x" * 100_000
        headers = {**RELAYED, **peer.sign("POST", "/echo?q=1", body, now())}
        answer = await client.post("/echo?q=1", content=body, headers=headers)
        assert answer.status_code == 200
        verified = peer.check_response(
            200, dict(answer.headers), answer.content, "/echo?q=1", headers[wire.SIG_NONCE]
        )
        assert verified == body
        # The same request again: a replay.
        again = await client.post("/echo?q=1", content=body, headers=headers)
        assert again.json()["reason"] == "replayed_nonce"
        # A tampered body.
        headers = {**RELAYED, **peer.sign("POST", "/echo", b"a", now())}
        tampered = await client.post("/echo", content=b"b", headers=headers)
        assert tampered.json()["reason"] == "bad_signature"
        # Management routes need a signature when relayed, and get a signed answer.
        headers = {**RELAYED, **peer.sign("GET", API_PREFIX + "clients", b"", now())}
        listing = await client.get(API_PREFIX + "clients", headers=headers)
        data = peer.check_response(
            200,
            dict(listing.headers),
            listing.content,
            API_PREFIX + "clients",
            headers[wire.SIG_NONCE],
        )
        assert [c["client_id"] for c in json.loads(data)["data"]["clients"]] == [peer.client_id]
        unsigned = await client.get(API_PREFIX + "clients", headers=RELAYED)
        assert unsigned.status_code == 401


async def test_large_and_streamed_bodies(protected: tuple[str, TrustMiddleware]) -> None:
    address, app = protected
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
        peer = await pair_over_http(client, app)
        # A client that verifies streams asks for records.
        headers = {
            **RELAYED,
            **peer.sign("GET", "/big", b"", now()),
            wire.ACCEPT_STREAM_SIGNING: "1",
        }
        answer = await client.get("/big", headers=headers)
        assert answer.headers[wire.RESP_BODY_SIGNING] == wire.STREAM_SIGNING_V1
        assert "content-length" not in answer.headers
        assert (
            peer.check_response(
                200, dict(answer.headers), answer.content, "/big", headers[wire.SIG_NONCE]
            )
            == BIG
        )
        # A reference client gets the bytes as they are, unsigned.
        headers = {**RELAYED, **peer.sign("GET", "/big", b"", now())}
        answer = await client.get("/big", headers=headers)
        assert answer.content == BIG
        assert wire.RESP_SIGNATURE not in answer.headers
        # Server-sent events arrive record by record, before the stream ends.
        headers = {
            **RELAYED,
            **peer.sign("GET", "/events", b"", now()),
            wire.ACCEPT_STREAM_SIGNING: "1",
        }
        async with client.stream("GET", "/events", headers=headers) as response:
            assert response.headers[wire.RESP_BODY_SIGNING] == wire.STREAM_SIGNING_V1
            started = time.monotonic()
            received = b""
            first_at = None
            async for chunk in response.aiter_raw():
                received += chunk
                if first_at is None:
                    first_at = time.monotonic() - started
            total = time.monotonic() - started
            assert first_at is not None
            assert first_at < total  # not buffered to the end
            body = peer.check_response(
                200, dict(response.headers), received, "/events", headers[wire.SIG_NONCE]
            )
            assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        with pytest.raises(SignatureMismatch):
            peer.check_response(
                200, dict(response.headers), received[:-68], "/events", headers[wire.SIG_NONCE]
            )


async def test_signed_websocket_and_revocation(protected: tuple[str, TrustMiddleware]) -> None:
    address, app = protected
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
        peer = await pair_over_http(client, app)
        other = await pair_over_http(client, app)
        # Unsigned upgrade through the relay: refused with the reason.
        with pytest.raises(InvalidStatus) as caught:
            async with ws_connect(f"ws://{address}/terminal", additional_headers=RELAYED):
                pass
        assert caught.value.response.status_code == 401
        target, nonce = peer.signed_query("/terminal", now(), cols="80")
        async with ws_connect(f"ws://{address}{target}", additional_headers=RELAYED) as ws:
            await ws.send(peer.frame(1, nonce, "text", b"hello"))
            assert peer.open_frame(1, nonce, await ws.recv()) == ("text", b"echo:hello")
            await ws.send(peer.frame(2, nonce, "binary", b"\x00\x01"))
            assert peer.open_frame(2, nonce, await ws.recv()) == ("binary", b"\x00\x01")
            await ws.send(peer.frame(3, nonce, "ping", b"p"))
            assert peer.open_frame(3, nonce, await ws.recv()) == ("pong", b"p")
            # A replayed frame closes the socket.
            await ws.send(peer.frame(3, nonce, "text", b"again"))
            msg_type, payload = peer.open_frame(4, nonce, await ws.recv())
            assert msg_type == "close"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008
        # Revoking the client closes its live socket at once; another client's stays.
        target, nonce = peer.signed_query("/terminal", now())
        other_target, other_nonce = other.signed_query("/terminal", now())
        async with (
            ws_connect(f"ws://{address}{target}", additional_headers=RELAYED) as ws,
            ws_connect(f"ws://{address}{other_target}", additional_headers=RELAYED) as other_ws,
        ):
            await ws.send(peer.frame(1, nonce, "text", b"hi"))
            assert peer.open_frame(1, nonce, await ws.recv()) == ("text", b"echo:hi")
            gone = await client.delete(f"{API_PREFIX}clients/{peer.client_id}")  # local
            assert gone.status_code == 200
            msg_type, payload = peer.open_frame(2, nonce, await asyncio.wait_for(ws.recv(), 5))
            assert msg_type == "close"
            assert payload[:2] == (1008).to_bytes(2, "big")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            await other_ws.send(other.frame(1, other_nonce, "text", b"still"))
            assert other.open_frame(1, other_nonce, await other_ws.recv()) == (
                "text",
                b"echo:still",
            )
        headers = {**RELAYED, **peer.sign("GET", "/whoami", b"", now())}
        assert (await client.get("/whoami", headers=headers)).json()["reason"] == "client_revoked"


async def test_request_bodies_spill_to_disk_and_are_bounded(tmp_path: Path) -> None:
    limits = TrustLimits(body_memory_limit=1000, body_limit=200_000)
    app = protect(sample_app(), data_dir=tmp_path / "data", limits=limits)
    async with serving(app) as address, httpx.AsyncClient(base_url=f"http://{address}") as client:
        peer = await pair_over_http(client, app)
        body = bytes(range(256)) * 600  # 153,600 bytes: over the memory limit, under the cap
        headers = {**RELAYED, **peer.sign("POST", "/echo", body, now())}
        answer = await client.post("/echo", content=body, headers=headers)
        nonce = headers[wire.SIG_NONCE]
        assert (
            peer.check_response(200, dict(answer.headers), answer.content, "/echo", nonce) == body
        )
        too_big = b"x" * 200_001
        headers = {**RELAYED, **peer.sign("POST", "/echo", too_big, now())}
        refused = await client.post("/echo", content=too_big, headers=headers)
        assert (refused.status_code, refused.json()["reason"]) == (413, "too_large")

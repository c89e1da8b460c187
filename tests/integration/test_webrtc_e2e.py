"""The WebRTC upgrade end to end on loopback: agent_relay.client (aiortc offerer) pairs with
a host through the real relay and the real connector (aiortc answerer), upgrades, and its
later calls go over the data channel, checked by the same admission as relayed ones."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agent_relay.client import HostRefusedError, KeyStore, RelayClient
from agent_relay.host import Connector, ConnectorConfig, StaticToken, UpstreamPool, UpstreamTarget
from agent_relay.trust import TrustHost
from agent_relay.trust.host import CLIENTS_PATH, ENROLLMENT_CODE_PATH
from agent_relay.trust.limits import TrustLimits
from agent_relay.webrtc import dtls_fingerprints
from agent_relay.webrtc.answerer import WebRtcAnswerer
from agent_relay.webrtc.host import OFFER_PATH
from agent_relay.webrtc.limits import ChannelLimits
from agent_relay.webrtc.messages import HttpRequest, HttpResponse
from agent_relay.webrtc.offerer import MayHaveRunError, P2PClient, P2POptions
from agent_relay.webrtc.peer import make_answer, make_offer
from tests.support.connector import FAST, eventually
from tests.support.hostile import Answer, HostileRelay, Recorded, hostile_relay, serve_asgi
from tests.support.relay import Relay, running_relay

pytestmark = pytest.mark.timeout(90)


class Upstream:
    def __init__(self) -> None:
        self.posts = 0

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            body = await request.body()
            if request.method == "POST":
                self.posts += 1
            return JSONResponse({"method": request.method, "body": body.decode(), "n": self.posts})

        async def slow(request: Request) -> Response:
            self.posts += 1
            await asyncio.sleep(1.0)
            return JSONResponse({"slow": True})

        async def blob(request: Request) -> Response:
            size = int(request.query_params.get("size", "1048576"))

            async def generate() -> AsyncIterator[bytes]:
                piece = bytes(range(256)) * 1024  # 256 KiB
                left = size
                while left > 0:
                    yield piece[:left]
                    left -= len(piece)

            return StreamingResponse(generate(), media_type="application/octet-stream")

        async def terminal(websocket: WebSocket) -> None:
            await websocket.accept()
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    text = await websocket.receive_text()
                    if text == "bye":
                        await websocket.close(4000, "asked to")
                        return
                    await websocket.send_text(f"echo:{text}")

        async def events(request: Request) -> StreamingResponse:
            async def generate() -> AsyncIterator[bytes]:
                for i in range(3):
                    yield f"data: event {i}\n\n".encode()
                    await asyncio.sleep(0.1)

            return StreamingResponse(generate(), media_type="text/event-stream")

        return Starlette(
            routes=[
                Route("/events", events),
                WebSocketRoute("/terminal", terminal),
                Route("/blob", blob),
                Route("/echo", echo, methods=["GET", "POST"]),
                Route("/slow", slow, methods=["POST"]),
            ]
        )


@dataclass
class Stack:
    relay: Relay
    trust: TrustHost
    answerer: WebRtcAnswerer
    upstream: Upstream
    host_id: str
    data_dir: Path
    hostile: HostileRelay

    async def client(self, *, via_hostile: bool = False, **options: object) -> P2PClient:
        pairing = await RelayClient.pair(
            self.hostile.url if via_hostile else self.relay.url,
            self.host_id,
            self.trust.issue_code(time.time()).code,
            token=self.relay.token,
            store=KeyStore(self.data_dir / f"client-{uuid.uuid4()}"),
        )
        relay = RelayClient(pairing, token=self.relay.token)
        return P2PClient(relay, P2POptions(**options))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def webrtc_stack(
    tmp_path: Path, sqlite_url: str, trust_limits: TrustLimits | None = None
) -> AsyncIterator[Stack]:
    upstream = Upstream()
    async with contextlib.AsyncExitStack() as stack:
        relay = await stack.enter_async_context(running_relay(sqlite_url))
        local_url = await stack.enter_async_context(serve_asgi(upstream.app()))
        trust = TrustHost.open(tmp_path / "host", limits=trust_limits)
        answerer = WebRtcAnswerer(trust, local_url)
        stack.push_async_callback(answerer.aclose)
        pool = UpstreamPool(UpstreamTarget.parse(local_url))
        stack.push_async_callback(pool.close)
        config = ConnectorConfig(
            relay_url=relay.url, machine_id="machine-1", name="h", backoff=FAST
        )
        connector = Connector(config, StaticToken(relay.token), pool, trust=trust, webrtc=answerer)
        running = asyncio.create_task(connector.run())

        async def stop() -> None:
            await connector.stop(timeout=5)
            await running

        stack.push_async_callback(stop)
        await eventually(lambda: connector.state.connected)
        hostile = await stack.enter_async_context(hostile_relay(relay.url))
        host_id = str(await relay.host_id())
        yield Stack(relay, trust, answerer, upstream, host_id, tmp_path, hostile)


@pytest.fixture
async def stack(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Stack]:
    async with webrtc_stack(tmp_path, sqlite_url) as running:
        yield running


async def test_calls_go_over_the_channel_and_back_to_the_relay(stack: Stack) -> None:
    client = await stack.client()
    try:
        assert await client.upgrade()
        assert stack.answerer.stats.channels_opened == 1
        for n in range(1, 6):
            answer = await client.request("POST", "/echo", body=f"hi {n}".encode())
            assert answer.path == "direct"
            assert json.loads(answer.body) == {"method": "POST", "body": f"hi {n}", "n": n}
        assert stack.answerer.stats.http_served == 5
        big = await client.request("POST", "/echo", body=b"x" * 300_000)  # several chunks
        assert big.path == "direct"
        assert json.loads(big.body)["body"] == "x" * 300_000
        # The host drops the channel: the next call upgrades again at once (it worked).
        await stack.answerer.close_peers()
        await eventually(lambda: not client.direct)
        answer = await client.request("GET", "/echo")
        assert (answer.status, answer.path) == (200, "direct")
        assert client.upgrades == 2
    finally:
        await client.aclose()
        await client.relay.aclose()


async def test_sse_and_a_large_download_stream_over_the_channel(stack: Stack) -> None:
    client = await stack.client()
    try:
        assert await client.upgrade()
        async with client.stream("GET", "/events") as (head, chunks):
            assert (head.status, head.path) == (200, "direct")
            assert head.headers["content-type"].startswith("text/event-stream")
            arrived = []
            async for chunk in chunks:
                arrived.append((chunk, time.monotonic()))
        assert [c for c, _ in arrived] == [f"data: event {i}\n\n".encode() for i in range(3)]
        assert arrived[-1][1] - arrived[0][1] > 0.15  # handed out as they came, not at the end
        size = 8 * 1024 * 1024  # over the 1 MiB message limit: only streamed can carry it
        digest = hashlib.sha256()
        async with client.stream("GET", f"/blob?size={size}") as (head, chunks):
            assert head.path == "direct"
            async for chunk in chunks:
                digest.update(chunk)
        expected = (bytes(range(256)) * 1024 * 32)[:size]
        assert digest.digest() == hashlib.sha256(expected).digest()
        assert stack.answerer.stats.body_messages > 100
    finally:
        await client.aclose()
        await client.relay.aclose()


async def test_a_websocket_goes_over_the_channel(stack: Stack) -> None:
    client = await stack.client()
    try:
        async with client.websocket("/terminal") as ws:
            for n in range(3):
                await ws.send_text(f"line {n}")
                assert await asyncio.wait_for(ws.recv(), 10) == f"echo:line {n}"
            await ws.send_text("bye")
            assert await asyncio.wait_for(ws.recv(), 10) is None
            assert (ws.close_code, ws.close_reason) == (4000, "asked to")
        assert stack.answerer.stats.ws_opened == 1
        assert stack.answerer.stats.ws_frames == 3
        assert client.direct
    finally:
        await client.aclose()
        await client.relay.aclose()


async def test_a_failed_upgrade_leaves_calls_on_the_relay_and_waits(stack: Stack) -> None:
    client = await stack.client(retry_after_failure=300.0)
    stack.answerer.limits = stack.answerer.peers.limits = type(stack.answerer.limits)(
        max_peers=1, max_peers_per_client=1
    )
    other = await stack.client()
    try:
        assert await other.upgrade()  # takes the host's only peer slot
        offers = stack.answerer.stats.offers
        assert not await client.upgrade()
        assert "429" in (client.last_error or "")
        for _ in range(3):
            answer = await client.request("POST", "/echo", body=b"relayed")
            assert answer.path == "relayed"
            assert json.loads(answer.body)["body"] == "relayed"
        assert stack.answerer.stats.offers == offers + 1  # no retry inside the cool-down
    finally:
        for one in (client, other):
            await one.aclose()
            await one.relay.aclose()


async def test_forged_and_pairing_route_requests_over_the_channel_are_refused(stack: Stack) -> None:
    client = await stack.client()
    try:
        assert await client.upgrade()
        pipe = client._pipe
        assert pipe is not None
        posts = stack.upstream.posts
        # A forged request: no signature at all, then a signature from a stranger's session.
        for headers in [
            {},
            {
                "x-vk-sig-session": [str(uuid.uuid4())],
                "x-vk-sig-ts": [str(int(time.time()))],
                "x-vk-sig-nonce": ["n"],
                "x-vk-sig-signature": ["A" * 86 + "=="],
            },
        ]:
            waiter: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
            client._pending["forged"] = waiter
            await pipe.send(HttpRequest("forged", "POST", "/echo", headers, b"evil"))
            answer = await asyncio.wait_for(waiter, 10)
            assert answer.status == 401
        assert stack.upstream.posts == posts
        assert stack.answerer.stats.refused == 2
        # The pairing-code route and the client list, even well signed: 403.
        for path in (ENROLLMENT_CODE_PATH, CLIENTS_PATH):
            with pytest.raises(HostRefusedError) as caught:
                await client.request("POST", path)
            assert (caught.value.status, caught.value.reason) == (403, "not_over_channel")
        assert client.direct
    finally:
        await client.aclose()
        await client.relay.aclose()


async def test_revocation_closes_the_channel_within_a_second(stack: Stack) -> None:
    client = await stack.client()
    try:
        assert await client.upgrade()
        stack.trust.revoke(client.relay.pairing.client_id)
        start = time.monotonic()
        await eventually(lambda: not client.direct, timeout=1.0)
        assert time.monotonic() - start < 1.0
    finally:
        await client.aclose()
        await client.relay.aclose()


async def test_the_end_of_the_signing_session_closes_the_channel(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with webrtc_stack(tmp_path, sqlite_url, TrustLimits(session_ttl=4.0)) as stack:
        client = await stack.client()
        try:
            started = time.monotonic()
            assert await client.upgrade()
            await eventually(lambda: not client.direct, timeout=6.0)
            assert time.monotonic() - started < 4.0 + 1.5
        finally:
            await client.aclose()
            await client.relay.aclose()


async def test_a_timed_out_call_is_not_run_twice(stack: Stack) -> None:
    client = await stack.client(answer_timeout=0.3)
    try:
        assert await client.upgrade()
        with pytest.raises(MayHaveRunError, match="may have run"):
            await client.request("POST", "/slow")
        await asyncio.sleep(1.2)
        assert stack.upstream.posts == 1
    finally:
        await client.aclose()
        await client.relay.aclose()


# ===================================================================== hostile relay


async def test_a_swapped_answer_is_refused(stack: Stack) -> None:
    """The relay puts an answer from its own aiortc peer (another DTLS fingerprint) in the
    host's envelope: the answer's signature does not check out, no channel opens."""
    client = await stack.client(via_hostile=True)
    relay_offerer, _, offer = await make_offer([], ChannelLimits())
    relay_answerer, forged = await make_answer(offer, [], ChannelLimits())

    def swap(recorded: Recorded, answer: Answer) -> Answer:
        if OFFER_PATH not in recorded.target:
            return answer
        envelope = json.loads(answer.body)
        assert dtls_fingerprints(forged) != dtls_fingerprints(envelope["data"]["sdp"])
        envelope["data"]["sdp"] = forged
        body = json.dumps(envelope).encode()
        headers = [(k, v) for k, v in answer.headers if k != b"content-length"]
        return Answer(answer.status, [*headers, (b"content-length", str(len(body)).encode())], body)

    stack.hostile.on_answer = swap
    try:
        assert not await client.upgrade()
        assert "VerificationError" in (client.last_error or "")
        assert not client.direct
        await asyncio.sleep(0.5)
        assert stack.answerer.stats.channels_opened == 0
        stack.hostile.reset()
        answer = await client.request("POST", "/echo", body=b"still works")
        assert answer.path == "relayed"
    finally:
        await relay_offerer.close()
        await relay_answerer.close()
        await client.aclose()
        await client.relay.aclose()


async def test_a_replayed_offer_is_refused(stack: Stack) -> None:
    client = await stack.client(via_hostile=True)
    try:
        assert await client.upgrade()
        offers = [r for r in stack.hostile.requests if OFFER_PATH in r.target]
        assert len(offers) == 1
        replayed = await stack.hostile.replay(offers[0])
        assert replayed.status_code == 401
        assert replayed.json()["reason"] == "replayed_nonce"
        assert stack.answerer.stats.offers == 1  # the replay never reached the answerer
    finally:
        await client.aclose()
        await client.relay.aclose()

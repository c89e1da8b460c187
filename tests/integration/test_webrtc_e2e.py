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

from agent_relay.client import ClientError, HostRefusedError, KeyStore, RelayClient
from agent_relay.host import Connector, ConnectorConfig, StaticToken, UpstreamPool, UpstreamTarget
from agent_relay.trust import TrustHost
from agent_relay.trust.host import CLIENTS_PATH, ENROLLMENT_CODE_PATH
from agent_relay.trust.limits import TrustLimits
from agent_relay.webrtc import dtls_fingerprints
from agent_relay.webrtc.answerer import WebRtcAnswerer
from agent_relay.webrtc.host import OFFER_PATH
from agent_relay.webrtc.limits import ChannelLimits
from agent_relay.webrtc.messages import Body, BodyEnd, Cancel, HttpRequest, HttpResponse
from agent_relay.webrtc.offerer import MayHaveRunError, P2PClient, P2POptions
from agent_relay.webrtc.peer import make_answer, make_offer
from tests.support.connector import FAST, eventually
from tests.support.hostile import Answer, HostileRelay, Recorded, hostile_relay, serve_asgi
from tests.support.relay import Relay, running_relay

pytestmark = pytest.mark.timeout(90)


class Upstream:
    def __init__(self) -> None:
        self.posts = 0
        self.uploads: list[tuple[int, str]] = []  # (size, sha256) of each body read
        self.forever_ended = asyncio.Event()  # the endless stream's generator was closed

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

        async def upload(request: Request) -> Response:
            digest, size = hashlib.sha256(), 0
            async for chunk in request.stream():
                digest.update(chunk)
                size += len(chunk)
            self.posts += 1
            self.uploads.append((size, digest.hexdigest()))
            return JSONResponse({"size": size, "sha256": digest.hexdigest()})

        async def forever(request: Request) -> StreamingResponse:
            async def generate() -> AsyncIterator[bytes]:
                try:
                    for i in range(10_000):
                        yield f"data: {i}\n\n".encode()
                        await asyncio.sleep(0.05)
                finally:
                    self.forever_ended.set()

            return StreamingResponse(generate(), media_type="text/event-stream")

        async def broken(request: Request) -> StreamingResponse:
            async def generate() -> AsyncIterator[bytes]:
                yield b"data: first\n\n"
                await asyncio.sleep(0.2)
                raise RuntimeError("the local server fell over")

            return StreamingResponse(generate(), media_type="text/event-stream")

        return Starlette(
            routes=[
                Route("/upload", upload, methods=["POST", "PUT"]),
                Route("/forever", forever),
                Route("/broken", broken),
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
    async def connected(self, **options: object) -> AsyncIterator[P2PClient]:
        """A paired client for one block, closed with its relay client at its end."""
        client = await self.client(**options)  # type: ignore[arg-type]
        try:
            yield client
        finally:
            await client.aclose()
            await client.relay.aclose()


@contextlib.asynccontextmanager
async def webrtc_stack(
    tmp_path: Path,
    sqlite_url: str,
    trust_limits: TrustLimits | None = None,
    channel_limits: ChannelLimits | None = None,
) -> AsyncIterator[Stack]:
    upstream = Upstream()
    async with contextlib.AsyncExitStack() as stack:
        relay = await stack.enter_async_context(running_relay(sqlite_url))
        local_url = await stack.enter_async_context(serve_asgi(upstream.app()))
        trust = TrustHost.open(tmp_path / "host", limits=trust_limits)
        answerer = WebRtcAnswerer(trust, local_url, limits=channel_limits)
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
    async with stack.connected() as client:
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


async def test_sse_and_a_large_download_stream_over_the_channel(stack: Stack) -> None:
    async with stack.connected() as client:
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


async def test_a_websocket_goes_over_the_channel(stack: Stack) -> None:
    async with stack.connected() as client:
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
    async with stack.connected() as client:
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


async def test_revocation_closes_the_channel_within_a_second(stack: Stack) -> None:
    async with stack.connected() as client:
        assert await client.upgrade()
        stack.trust.revoke(client.relay.pairing.client_id)
        start = time.monotonic()
        await eventually(lambda: not client.direct, timeout=1.0)
        assert time.monotonic() - start < 1.0


async def test_the_end_of_the_signing_session_closes_the_channel(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with (
        webrtc_stack(tmp_path, sqlite_url, TrustLimits(session_ttl=4.0)) as stack,
        stack.connected() as client,
    ):
        started = time.monotonic()
        assert await client.upgrade()
        await eventually(lambda: not client.direct, timeout=6.0)
        assert time.monotonic() - started < 4.0 + 1.5


async def test_a_timed_out_call_is_not_run_twice(stack: Stack) -> None:
    async with stack.connected(answer_timeout=0.3) as client:
        assert await client.upgrade()
        with pytest.raises(MayHaveRunError, match="may have run"):
            await client.request("POST", "/slow")
        await asyncio.sleep(1.2)
        assert stack.upstream.posts == 1


# ===================================================================== streamed uploads


def _blob(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


async def test_a_large_upload_streams_over_the_channel(stack: Stack) -> None:
    async with stack.connected() as client:
        assert await client.upgrade()
        size = 6 * 1024 * 1024  # over the 1 MiB message limit: only streamed can carry it
        body = _blob(size)
        answer = await client.request("POST", "/upload", body=body)
        assert answer.path == "direct"
        assert json.loads(answer.body) == {"size": size, "sha256": hashlib.sha256(body).hexdigest()}
        assert "upload" in client.host_extensions
        assert stack.answerer.stats.uploads == 1
        assert stack.answerer.stats.upload_bytes == size
        # A small body still goes whole, in the message.
        small = await client.request("POST", "/echo", body=b"small")
        assert (small.path, json.loads(small.body)["body"]) == ("direct", "small")
        assert stack.answerer.stats.uploads == 1


async def _raw_request(
    client: P2PClient, request: HttpRequest
) -> tuple[asyncio.Future[HttpResponse], object]:
    """Send ``request`` on the client's pipe by hand; its answer's future and credit."""
    pipe = client._pipe
    assert pipe is not None
    waiter: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
    client._pending[request.id] = waiter
    from agent_relay.webrtc.offerer import _Credit

    credit = client._credits[request.id] = _Credit()
    await pipe.send(request)
    return waiter, credit


async def test_an_upload_whose_body_does_not_match_its_signature_never_reaches_the_server(
    stack: Stack,
) -> None:
    """The body is checked against the signed hash when it ends, and only then passed on:
    a body swapped on the channel is refused (401) and the local server never sees it."""
    async with stack.connected() as client:
        assert await client.upgrade()
        pipe = client._pipe
        assert pipe is not None
        signed = client.relay._sign("POST", "/upload", b"the signed body")
        headers = {k.lower(): [v] for k, v in signed.headers().items()}
        request = HttpRequest("swap", "POST", signed.path_and_query, headers, upload=True)
        waiter, credit = await _raw_request(client, request)
        await eventually(lambda: credit.available > 0)  # type: ignore[attr-defined]
        await pipe.send(Body("swap", b"another body, of the same or any size"))
        await pipe.send(BodyEnd("swap"))
        answer = await asyncio.wait_for(waiter, 10)
        assert answer.status == 401
        assert json.loads(answer.body)["reason"] == "bad_signature"
        assert stack.upstream.uploads == []
        assert client.direct


async def test_an_upload_over_its_credit_closes_the_channel(
    tmp_path: Path, sqlite_url: str
) -> None:
    limits = ChannelLimits(upload_window=64 * 1024)
    async with (
        webrtc_stack(tmp_path, sqlite_url, channel_limits=limits) as stack,
        stack.connected() as client,
    ):
        assert await client.upgrade()
        pipe = client._pipe
        assert pipe is not None
        signed = client.relay._sign("POST", "/upload", b"x" * 200_000)
        headers = {k.lower(): [v] for k, v in signed.headers().items()}
        request = HttpRequest("flood", "POST", signed.path_and_query, headers, upload=True)
        _, credit = await _raw_request(client, request)
        await eventually(lambda: credit.available > 0)  # type: ignore[attr-defined]
        assert credit.available == 64 * 1024  # type: ignore[attr-defined]
        # One message of 96 KiB against 64 KiB of credit: over it before any is read.
        await pipe.send(Body("flood", b"x" * 96 * 1024))
        await eventually(lambda: not client.direct)
        assert stack.upstream.uploads == []


async def test_an_upload_over_the_body_limit_is_refused_and_not_run(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with (
        webrtc_stack(tmp_path, sqlite_url, TrustLimits(body_limit=2 * 1024 * 1024)) as stack,
        stack.connected() as client,
    ):
        assert await client.upgrade()
        with pytest.raises(HostRefusedError) as caught:
            await client.request("POST", "/upload", body=_blob(3 * 1024 * 1024))
        assert (caught.value.status, caught.value.reason) == (413, "too_large")
        assert stack.upstream.uploads == []
        assert client.direct  # a refusal, not a broken channel
        fits = await client.request("POST", "/upload", body=_blob(1024 * 1024 + 1))
        assert fits.path == "direct"
        assert json.loads(fits.body)["size"] == 1024 * 1024 + 1


async def test_a_reference_peer_still_gets_whole_base64_bodies(stack: Stack) -> None:
    """No hello, no stream, no upload: the body in the request, the answer whole."""
    async with stack.connected() as client:
        assert await client.upgrade()
        body = b"reference body"
        signed = client.relay._sign("POST", "/echo", body)
        headers = {k.lower(): [v] for k, v in signed.headers().items()}
        waiter, _ = await _raw_request(
            client, HttpRequest("ref", "POST", signed.path_and_query, headers, body)
        )
        answer = await asyncio.wait_for(waiter, 10)
        assert (answer.status, answer.stream) == (200, False)
        assert json.loads(answer.body)["body"] == "reference body"


# ===================================================================== cancel


async def test_a_stream_left_early_is_cancelled_on_the_host(stack: Stack) -> None:
    async with stack.connected() as client:
        assert await client.upgrade()
        async with client.stream("GET", "/forever") as (head, chunks):
            assert head.path == "direct"
            async for chunk in chunks:
                assert chunk.startswith(b"data: ")
                break
        # The host stops its local request: the local server's generator is closed.
        await asyncio.wait_for(stack.upstream.forever_ended.wait(), 10)
        assert stack.answerer.stats.cancelled_by_client == 1
        answer = await client.request("GET", "/echo")  # the channel carries on
        assert answer.path == "direct"


async def test_a_cancelled_upload_frees_its_place_on_the_host(
    tmp_path: Path, sqlite_url: str
) -> None:
    limits = ChannelLimits(max_uploads=1, upload_window=64 * 1024)
    async with (
        webrtc_stack(tmp_path, sqlite_url, channel_limits=limits) as stack,
        stack.connected() as client,
    ):
        assert await client.upgrade()
        pipe = client._pipe
        assert pipe is not None
        signed = client.relay._sign("POST", "/upload", b"z" * 500_000)
        headers = {k.lower(): [v] for k, v in signed.headers().items()}
        request = HttpRequest("gone", "POST", signed.path_and_query, headers, upload=True)
        _, credit = await _raw_request(client, request)
        await eventually(lambda: credit.available > 0)  # type: ignore[attr-defined]
        await pipe.send(Body("gone", b"z" * 32 * 1024))
        await pipe.send(Cancel("gone"))
        await eventually(lambda: stack.answerer.stats.cancelled_by_client == 1)
        # Its upload slot is free again: the next upload (the only one allowed) runs.
        body = _blob(300_000)
        answer = await client.request("POST", "/upload", body=body)
        assert answer.path == "direct"
        assert json.loads(answer.body)["size"] == 300_000
        assert stack.upstream.uploads == [(300_000, hashlib.sha256(body).hexdigest())]


async def test_the_host_cancels_when_its_local_server_fails_mid_body(stack: Stack) -> None:
    async with stack.connected() as client:
        assert await client.upgrade()
        got: list[bytes] = []

        async def read() -> None:
            async with client.stream("GET", "/broken") as (head, chunks):
                assert head.path == "direct"
                async for chunk in chunks:
                    got.append(chunk)

        with pytest.raises(ClientError, match="cancelled by the host"):
            await read()
        assert got == [b"data: first\n\n"]
        assert stack.answerer.stats.cancelled_by_host == 1
        assert client.direct


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
    async with stack.connected(via_hostile=True) as client:
        assert await client.upgrade()
        offers = [r for r in stack.hostile.requests if OFFER_PATH in r.target]
        assert len(offers) == 1
        replayed = await stack.hostile.replay(offers[0])
        assert replayed.status_code == 401
        assert replayed.json()["reason"] == "replayed_nonce"
        assert stack.answerer.stats.offers == 1  # the replay never reached the answerer

"""The trust layer end to end: agent_relay.client pairs with a host and talks to it
through the real relay and the real connector, the local server behind protect(). Then
the same through a hostile relay (tests/integration/hostile.py) that tampers, replays,
swaps and reorders: every attack must be detected and refused, and no forged data may
come out of the client."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from spake2 import SPAKE2_A

from agent_relay.client import (
    ClientError,
    HostRefusedError,
    PairingError,
    RelayClient,
    VerificationError,
)
from agent_relay.client.clock import HostClock
from agent_relay.trust import wire
from agent_relay.trust.host import API_PREFIX
from agent_relay.trust.limits import TrustLimits
from tests.support.hostile import Answer, Recorded
from tests.support.trust_stack import (
    BIG,
    Stack,
    flip_last_byte,
    trust_stack,
)

MODES = ["connector", "asgi"]


@pytest.fixture(params=MODES)
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> AsyncIterator[Stack]:
    async with trust_stack(tmp_path, sqlite_url, request.param) as running:
        yield running


@pytest.fixture
async def paired(stack: Stack) -> AsyncIterator[tuple[Stack, RelayClient]]:
    pairing = await stack.pair()
    async with stack.client(pairing) as client:
        yield stack, client


# ===================================================================== honest relay


async def test_pair_then_signed_calls(stack: Stack) -> None:
    pairing = await stack.pair(via_hostile=False)
    assert [c.client_id for c in stack.host.list_clients()] == [pairing.client_id]
    stored = stack.store().load(stack.relay.url, stack.host_id)
    assert stored.host_public_key == wire.b64decode(stack.host.public_key_b64)
    async with stack.client(stored, store=stack.store()) as client:
        response, body = await client.request("POST", "/echo?a=1&b=x%20y", body=b"hello")
        assert response.status == 200
        assert json.loads(body) == {
            "method": "POST",
            "path": "/echo",
            "query": "a=1&b=x%20y",
            "body": "hello",
            "posts": 1,
        }
        response, body = await client.request("GET", "/echo")
        assert json.loads(body)["method"] == "GET"
        response, body = await client.request("GET", "/missing")
        assert response.status == 404  # the host's own 404, signed: data, not an error


async def test_streamed_sse_verifies_as_it_reads(paired: tuple[Stack, RelayClient]) -> None:
    _, client = paired
    async with client.stream("GET", "/events") as response:
        assert response.streamed
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [chunk async for chunk in response.iter_bytes()]
    assert b"".join(events) == b"".join(f"data: event {i}\n\n".encode() for i in range(3))
    assert len(events) == 3  # one record per event, handed out as each verified


async def test_large_download_is_streamed_and_verified(paired: tuple[Stack, RelayClient]) -> None:
    _, client = paired
    digest = hashlib.sha256()
    size = 0
    async with client.stream("GET", "/big") as response:
        assert response.streamed
        async for chunk in response.iter_bytes():
            assert len(chunk) <= wire.MAX_CHUNK_PAYLOAD
            digest.update(chunk)
            size += len(chunk)
    assert size == len(BIG)
    assert digest.digest() == hashlib.sha256(BIG).digest()


async def test_signed_websocket(paired: tuple[Stack, RelayClient]) -> None:
    _, client = paired
    async with client.websocket("/terminal?tty=1&name=a%20b~c*d&x=%C3%BC") as socket:
        await socket.send_text("hi")
        assert (await socket.recv()).text == "echo:hi"
        await socket.send_text("twice")
        assert [(await socket.recv()).text for _ in range(2)] == ["echo:twice", "echo:again"]
        await socket.send_text("bye")
        closing = await socket.recv()
        assert closing.msg_type == "close"
        assert closing.close_code() == (4000, "asked to")


async def revoke_while_streaming(stack: Stack, client: RelayClient) -> None:
    """The client is revoked while an answer streams: the stream is cut where it was;
    what came out had verified, and its signed end never comes, so the read fails."""
    ticks: list[bytes] = []

    async def read_ticks() -> None:
        async with client.stream("GET", "/ticks") as response:
            async for chunk in response.iter_bytes():
                ticks.append(chunk)
                if len(ticks) == 2:
                    stack.host.revoke(client.pairing.client_id)

    with pytest.raises(ClientError):
        await asyncio.wait_for(read_ticks(), 10)
    assert 2 <= len(ticks) < 200
    await client.aclose()


async def test_revocation_ends_calls_streams_and_live_sockets(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired
    await client.request("GET", "/echo")
    if stack.mode == "connector":  # protect() lets a running answer finish (see report)
        await revoke_while_streaming(stack, client)
        client = stack.client(await stack.pair(name="second"))
    async with client.websocket("/terminal") as socket:
        await socket.send_text("hi")
        assert (await socket.recv()).text == "echo:hi"
        assert stack.host.revoke(client.pairing.client_id)
        closing = await asyncio.wait_for(socket.recv(), 5)  # closed at once, signed
        assert closing.msg_type == "close"
        assert closing.close_code()[0] == 1008
    with pytest.raises(HostRefusedError, match=r"revoked|not paired") as refused:
        await client.request("GET", "/echo")
    assert refused.value.status == 401
    await client.aclose()


async def test_session_refresh_and_relay_session_recreation(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired
    await client.request("GET", "/echo")
    # The host forgets the signing session (as after 15 min idle): a GET is refreshed
    # and retried once.
    client.pairing = dataclasses.replace(client.pairing, signing_session_id=str(uuid.uuid4()))
    response, _ = await client.request("GET", "/echo")
    assert response.status == 200
    assert client.refreshes == 1
    # A POST is not retried on an unsigned 401: it says so rather than risk running twice.
    client.pairing = dataclasses.replace(client.pairing, signing_session_id=str(uuid.uuid4()))
    with pytest.raises(HostRefusedError, match="not retried") as refused:
        await client.request("POST", "/echo", body=b"x")
    assert refused.value.reason == "unknown_session"
    assert stack.upstream.posts == 0
    # But a session known to be idle past the host's limit is renewed before sending.
    client.pairing = dataclasses.replace(
        client.pairing,
        signing_session_id=str(uuid.uuid4()),
        session_used_at=time.time() - 20 * 60,
    )
    response, body = await client.request("POST", "/echo", body=b"x")
    assert json.loads(body)["posts"] == 1
    assert client.refreshes == 2
    # The relay session is revoked at the relay: a new one is made, the request sent again.
    await client.refresh_signing_session()
    assert client.pairing.relay_session_id is not None
    await stack.relay.store.revoke_browser_session(uuid.UUID(client.pairing.relay_session_id))
    stack.relay.service.app.forget_session(uuid.UUID(client.pairing.relay_session_id))
    before = client.relay_session_creations
    response, body = await client.request("POST", "/echo", body=b"y")
    assert response.status == 200
    assert json.loads(body)["posts"] == 2
    assert client.relay_session_creations == before + 1


async def test_clock_skew_is_corrected(stack: Stack) -> None:
    pairing = await stack.pair()
    # The host's clock_skew 401 is unsigned (it may be the relay's): it may move our clock
    # by at most the host's window (30 s) and is never saved, so a 75 s skew stays refused.
    skewed = HostClock(lambda: time.time() + 75)  # 75 s fast: beyond the host's ±30 s
    async with stack.client(pairing, clock=skewed) as client:
        with pytest.raises(HostRefusedError) as refused:
            await client.request("GET", "/echo")
        assert refused.value.reason == "clock_skew"
        assert skewed.offset == 0
    assert client.pairing.clock_offset == 0  # nothing kept for the next run
    far = HostClock(lambda: time.time() - 3600)  # an unsigned 401 cannot move it an hour
    async with stack.client(pairing, clock=far) as client:
        with pytest.raises(HostRefusedError) as refused:
            await client.request("GET", "/echo")
        assert refused.value.reason == "clock_skew"
        assert far.offset == 0


# ===================================================================== hostile relay


async def test_tampered_body_is_refused(paired: tuple[Stack, RelayClient]) -> None:
    stack, client = paired
    stack.hostile.on_answer = flip_last_byte
    with pytest.raises(VerificationError, match=r"altered|does not verify"):
        await client.request("GET", "/echo")


async def test_tampered_status_and_stripped_signature_are_refused(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired

    def as_500(recorded: Recorded, answer: Answer) -> Answer:
        answer.status = 500
        return answer

    stack.hostile.on_answer = as_500
    with pytest.raises(VerificationError):
        await client.request("GET", "/echo")

    def unsigned(recorded: Recorded, answer: Answer) -> Answer:
        answer.headers = [(k, v) for k, v in answer.headers if not k.startswith(b"x-vk-resp")]
        return answer

    stack.hostile.on_answer = unsigned
    with pytest.raises(VerificationError, match="no host signature"):
        await client.request("GET", "/echo")


async def test_tampered_or_truncated_stream_is_refused(paired: tuple[Stack, RelayClient]) -> None:
    stack, client = paired

    def tamper_middle(recorded: Recorded, answer: Answer) -> Answer:
        middle = len(answer.body) // 2
        answer.body = answer.body[:middle] + b"X" + answer.body[middle + 1 :]
        return answer

    stack.hostile.on_answer = tamper_middle
    received: list[bytes] = []

    async def read_big() -> None:
        async with client.stream("GET", "/big") as response:
            async for chunk in response.iter_bytes():
                received.append(chunk)

    with pytest.raises(VerificationError):
        await read_big()
    received_size = sum(map(len, received))
    assert received_size < len(BIG) // 2 + wire.MAX_CHUNK_PAYLOAD  # stopped at the bad record
    assert b"".join(received) == BIG[:received_size]  # and what came out was all genuine

    def drop_final_record(recorded: Recorded, answer: Answer) -> Answer:
        answer.body = answer.body[: -(wire.CHUNK_HEADER.size + wire.SIGNATURE_SIZE)]
        return answer

    stack.hostile.on_answer = drop_final_record
    with pytest.raises(VerificationError, match="cut short"):
        await client.request("GET", "/events")


async def test_downgrade_to_unsigned_stream_is_refused(paired: tuple[Stack, RelayClient]) -> None:
    stack, client = paired

    def strip_accept(recorded: Recorded) -> Recorded:
        recorded.headers = [
            (k, v) for k, v in recorded.headers if k.lower() != wire.ACCEPT_STREAM_SIGNING
        ]
        return recorded

    stack.hostile.on_request = strip_accept
    assert client.pairing.signs_headers  # learned by pair()'s signed read
    # The opt-in is one of the signed headers: the host itself refuses the request.
    with pytest.raises(HostRefusedError) as refused:
        await client.request("GET", "/big")
    assert refused.value.reason == "bad_signature"
    # Before the flag is learned a request signs no headers: the host sends the stream
    # unsigned and the client refuses it (it asked for chunked-v1).
    unlearned = dataclasses.replace(client.pairing, signs_headers=False)
    async with stack.client(unlearned) as fresh:
        with pytest.raises(VerificationError, match="no host signature"):
            await fresh.request("GET", "/big")


async def test_replayed_request_is_refused(paired: tuple[Stack, RelayClient]) -> None:
    stack, client = paired
    _, body = await client.request("POST", "/echo", body=b"pay once")
    assert json.loads(body)["posts"] == 1
    signed_post = next(r for r in stack.hostile.requests if r.target.endswith("/echo"))
    replayed = await stack.hostile.replay(signed_post)
    assert replayed.status_code == 401
    assert replayed.json()["reason"] == "replayed_nonce"
    assert stack.upstream.posts == 1


async def test_answers_swapped_between_sessions_are_refused(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired
    other_pairing = await stack.pair(name="other")
    async with stack.client(other_pairing) as other:
        stack.hostile.on_answer = lambda recorded, answer: answer  # record whole answers
        await other.request("GET", "/echo")
        theirs = stack.hostile.answers[-1]
        stack.hostile.on_answer = lambda recorded, answer: theirs
        with pytest.raises(VerificationError):
            await client.request("GET", "/echo")
        # And an old answer to the same client for the same path: bound to its nonce.
        stack.hostile.on_answer = lambda recorded, answer: answer
        await client.request("GET", "/echo")
        old = stack.hostile.answers[-1]
        stack.hostile.on_answer = lambda recorded, answer: old
        with pytest.raises(VerificationError):
            await client.request("GET", "/echo")


async def test_pairing_traffic_cannot_be_reused(stack: Stack) -> None:
    pairing = await stack.pair()
    start = next(r for r in stack.hostile.requests if r.target.endswith("spake2/start"))
    finish = next(r for r in stack.hostile.requests if r.target.endswith("spake2/finish"))
    assert b"enrollment_code" not in start.body  # the code never crossed the relay
    assert (await stack.hostile.replay(start)).status_code == 401  # the code was used up
    assert (await stack.hostile.replay(finish)).status_code in (400, 401, 404)
    # The relay swaps in its own key with the observed proof: refused.
    forged = json.loads(finish.body)
    forged["public_key_b64"] = wire.b64encode(bytes(32))
    forged["client_id"] = str(uuid.uuid4())
    finish.body = json.dumps(forged).encode()
    assert (await stack.hostile.replay(finish)).status_code in (400, 401, 404)
    assert [c.client_id for c in stack.host.list_clients()] == [pairing.client_id]


async def test_relay_swapping_the_host_key_during_pairing_is_caught(stack: Stack) -> None:
    def swap_key(recorded: Recorded, answer: Answer) -> Answer:
        if recorded.target.endswith("spake2/finish") and answer.status == 200:
            document = json.loads(answer.body)
            document["data"]["server_public_key_b64"] = wire.b64encode(bytes(range(32)))
            answer.body = json.dumps(document).encode()
        return answer

    stack.hostile.on_answer = swap_key
    with pytest.raises(PairingError, match="proof is wrong"):
        await stack.pair()
    assert not stack.store().all()  # nothing stored


async def test_reordered_dropped_or_forged_frames_are_refused(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired
    stack.hostile.ws_hold = 2
    stack.hostile.ws_down = lambda held: list(reversed(held))
    async with client.websocket("/terminal") as socket:
        await socket.send_text("twice")
        with pytest.raises(VerificationError, match="arrived where 1 was due"):
            await asyncio.wait_for(socket.recv(), 5)
    stack.hostile.ws_down = lambda held: held[1:]  # drop the first
    async with client.websocket("/terminal") as socket:
        await socket.send_text("twice")
        with pytest.raises(VerificationError, match="arrived where 1 was due"):
            await asyncio.wait_for(socket.recv(), 5)

    def forge(held: list[str | bytes]) -> list[str | bytes]:
        envelope = json.loads(held[0])
        envelope["payload_b64"] = wire.b64encode(b"echo:rm -rf /")
        return [json.dumps(envelope)]

    stack.hostile.ws_hold = 1
    stack.hostile.ws_down = forge
    async with client.websocket("/terminal") as socket:
        await socket.send_text("hi")
        with pytest.raises(VerificationError, match="does not verify"):
            await asyncio.wait_for(socket.recv(), 5)


# ===================================================================== brute force


async def test_guessing_the_code_through_the_relay_cannot_succeed(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The bound: a code is 6 characters from 36 (36^6 ≈ 2.18e9 values) and is burned by
    the first spake2/start, right or wrong; a guesser gets at most one try per code the
    owner makes, and the per-address limit (a burst of `pair_burst`, then one per
    `pair_refill` s) caps tries over a code's life even if codes were not single use."""
    limits = TrustLimits()
    async with trust_stack(tmp_path, sqlite_url, "connector", limits) as stack:
        host = stack.host
        host.issue_code(time.time())
        relay_session = await stack.relay.browser_session(uuid.UUID(stack.host_id))
        base = f"{stack.relay.url}/v1/relay/h/{stack.host_id}/s/{relay_session}{API_PREFIX}"

        async def guess(http: httpx.AsyncClient, number: int) -> int:
            spake = SPAKE2_A(
                f"{number:06d}".encode(),
                idA=wire.SPAKE2_CLIENT_IDENTITY,
                idB=wire.SPAKE2_SERVER_IDENTITY,
            )
            message = wire.b64encode(spake.start())
            answer = await http.post(base + "spake2/start", json={"client_message_b64": message})
            return answer.status_code

        async with httpx.AsyncClient(timeout=10) as http:
            # One code: the first start runs SPAKE2 (with a wrong password, its key is
            # useless to the guesser) and uses the code up; every later guess is refused.
            one_code = [await guess(http, n) for n in range(20)]
            assert one_code[0] == 200
            assert set(one_code[1:]) == {401}
            assert host.current_code(time.time()) is None
            # Even if the owner made a new code before every guess, the per-address limit
            # stops the guesser after a burst.
            fresh_codes = []
            for n in range(limits.pair_burst + 5):
                host.issue_code(time.time())
                fresh_codes.append(await guess(http, n))
        allowed = limits.pair_burst - 1  # the first guess above spent one try
        assert fresh_codes == [200] * allowed + [429] * (len(fresh_codes) - allowed)
    space = 36**6
    tries_single_use = 1
    tries_rate_limited = limits.pair_burst + math.floor(limits.code_ttl / limits.pair_refill)
    print(
        f"\nbrute-force bound: {space:,} codes; at most {tries_single_use} guess per code "
        f"(single use) -> P(success) <= {tries_single_use / space:.2e} per code; even "
        f"without single use, {tries_rate_limited} guesses per address in the code's "
        f"{limits.code_ttl:.0f} s life -> P <= {tries_rate_limited / space:.2e}"
    )
    assert tries_single_use / space < 1e-9
    assert tries_rate_limited / space < 1e-8


async def test_relay_errors_are_not_data(paired: tuple[Stack, RelayClient]) -> None:
    stack, client = paired
    # A relay answering on its own (host offline, say) is reported as the relay's refusal.

    def offline(recorded: Recorded, answer: Answer) -> Answer:
        return Answer(404, [(b"content-type", b"application/json")], b'{"error":"No active relay"}')

    stack.hostile.on_answer = offline
    with pytest.raises(ClientError, match="No active relay"):
        await client.request("GET", "/echo")


async def test_client_frames_reordered_or_upgrade_replayed_are_refused(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired
    # Towards the host: two client frames swapped; the host closes the socket (signed).
    stack.hostile.ws_up_hold = 2
    stack.hostile.ws_up = lambda held: list(reversed(held))
    async with client.websocket("/terminal") as socket:
        await socket.send_text("one")
        await socket.send_text("two")
        closing = await asyncio.wait_for(socket.recv(), 5)
        assert closing.msg_type == "close"
        assert closing.close_code()[0] == 1008
    # A recorded upgrade (its signature is in the query) sent again: refused.
    stack.hostile.reset()
    replayed_target = stack.hostile.ws_targets[-1]
    url = "ws://" + stack.relay.url.removeprefix("http://") + replayed_target
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, open_timeout=5)
    assert refused.value.response.status_code in (401, 403)

"""Two real aiortc peers on loopback: the offer/answer with bounded gathering, and channel
messages in both directions through the chunk codec (one bigger than several chunks)."""

from __future__ import annotations

import asyncio

import pytest

from agent_relay.webrtc import dtls_fingerprints
from agent_relay.webrtc.limits import ChannelLimits
from agent_relay.webrtc.messages import HttpRequest, HttpResponse, WsFrame
from agent_relay.webrtc.peer import (
    IceServer,
    MessagePipe,
    NegotiationError,
    accept_answer,
    make_answer,
    make_offer,
)

LIMITS = ChannelLimits(max_message=4 << 20)


async def _host_side(offer: str, ready: asyncio.Future[MessagePipe]) -> str:
    pc, answer = await make_answer(offer, [], LIMITS)

    @pc.on("datachannel")
    def on_channel(channel: object) -> None:
        pipe = MessagePipe(channel, LIMITS)  # type: ignore[arg-type]
        ready.set_result(pipe)

    _HOST_PCS.append(pc)
    return answer


_HOST_PCS: list[object] = []


@pytest.mark.timeout(60)
async def test_messages_cross_a_loopback_data_channel() -> None:
    pc, channel, offer = await make_offer([], LIMITS)
    assert "a=candidate" in offer  # non-trickle: the candidates are in the offer
    ready: asyncio.Future[MessagePipe] = asyncio.get_running_loop().create_future()
    answer = await _host_side(offer, ready)
    assert dtls_fingerprints(answer) != dtls_fingerprints(offer)
    await accept_answer(pc, answer)
    client = MessagePipe(channel, LIMITS)
    await client.wait_open(10)
    host = await asyncio.wait_for(ready, 10)
    try:
        big = bytes(range(256)) * 8192  # 2 MiB: about 45 chunks once in base64
        await client.send(HttpRequest("r1", "POST", "/api/x", {"x": ["1"]}, big))
        received = await asyncio.wait_for(host.receive(), 20)
        assert received == HttpRequest("r1", "POST", "/api/x", {"x": ["1"]}, big)
        await host.send(HttpResponse("r1", 200, {"content-type": ["text/plain"]}, b"ok"))
        assert await asyncio.wait_for(client.receive(), 10) == HttpResponse(
            "r1", 200, {"content-type": ["text/plain"]}, b"ok"
        )
        for n in range(50):
            await host.send(WsFrame("c", "text", str(n).encode()))
        got = [await asyncio.wait_for(client.receive(), 10) for _ in range(50)]
        assert got == [WsFrame("c", "text", str(n).encode()) for n in range(50)]
        client.close()
        assert await asyncio.wait_for(host.receive(), 10) is None
    finally:
        await pc.close()
        for other in _HOST_PCS:
            await other.close()  # type: ignore[attr-defined]
        _HOST_PCS.clear()


@pytest.mark.timeout(60)
async def test_a_message_over_the_limit_closes_the_channel() -> None:
    pc, channel, offer = await make_offer([], LIMITS)
    ready: asyncio.Future[MessagePipe] = asyncio.get_running_loop().create_future()
    host_pc, answer = await make_answer(offer, [], ChannelLimits(max_message=100_000))
    host_pc.on(
        "datachannel",
        lambda ch: ready.set_result(MessagePipe(ch, ChannelLimits(max_message=100_000))),
    )
    await accept_answer(pc, answer)
    client = MessagePipe(channel, LIMITS)
    await client.wait_open(10)
    host = await asyncio.wait_for(ready, 10)
    try:
        await client.send(HttpRequest("r1", "POST", "/api/x", {}, b"x" * 200_000))
        assert await asyncio.wait_for(host.receive(), 10) is None
        assert host.error is not None
        assert "over 100000 bytes" in host.error
    finally:
        await pc.close()
        await host_pc.close()


async def test_a_bad_offer_is_a_negotiation_error() -> None:
    with pytest.raises(NegotiationError, match="bad offer"):
        await make_answer("v=0\r\nnot sdp\r\n", [], LIMITS)
    with pytest.raises(NegotiationError, match="no data channel"):
        await make_answer("v=0\r\na=fingerprint:sha-256 AB:CD\r\n", [], LIMITS)


def test_ice_servers_parse() -> None:
    assert IceServer.parse("stun:127.0.0.1:3478") == IceServer("stun:127.0.0.1:3478")
    assert IceServer.parse("turn:u:p@10.0.0.1:3478") == IceServer("turn:10.0.0.1:3478", "u", "p")
    with pytest.raises(ValueError, match="stun:/turn:"):
        IceServer.parse("http://x")

"""The thin aiortc adapter: make an offer or an answer with bounded, non-trickle gathering,
and carry channel messages over an ordered reliable data channel named ``relay``.

aiortc is an optional extra (``pip install 'agent-relay[webrtc]'``); :func:`require_aiortc`
says so in one line when it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AgentRelayError
from .chunking import ChunkError, Reassembler, split_message
from .limits import ChannelLimits
from .messages import ChannelMessage, MessageError, decode_message, encode_message
from .sdp import SdpError, dtls_fingerprints

if TYPE_CHECKING:
    from aiortc import RTCDataChannel, RTCPeerConnection

log = logging.getLogger(__name__)

CHANNEL_LABEL = "relay"
# Pause writing while this much is queued in SCTP; resume when it drains below half.
HIGH_WATER = 1 << 20


class WebRtcUnavailable(AgentRelayError):
    """aiortc is not installed, or --p2p cannot be used as asked."""


class NegotiationError(RuntimeError):
    """An offer or answer could not be made or used in time."""


def require_aiortc() -> None:
    if importlib.util.find_spec("aiortc") is None:
        raise WebRtcUnavailable(
            "the peer-to-peer upgrade needs aiortc: pip install 'agent-relay[webrtc]'"
        )


@dataclass(frozen=True, slots=True)
class IceServer:
    url: str  # stun:host:port or turn:host:port
    username: str | None = None
    credential: str | None = None

    @classmethod
    def parse(cls, text: str) -> IceServer:
        """``stun:HOST:PORT`` or ``turn:USER:PASS@HOST:PORT`` (the CLI's --stun/--turn)."""
        scheme, sep, rest = text.partition(":")
        if not sep or scheme not in ("stun", "turn", "turns") or not rest:
            raise ValueError(f"not a stun:/turn: URL: {text!r}")
        if scheme == "stun":
            return cls(text)
        auth, at, where = rest.rpartition("@")
        if not at:
            return cls(text)
        user, _, password = auth.partition(":")
        return cls(f"{scheme}:{where}", user, password)


def _peer_connection(ice_servers: Sequence[IceServer]) -> RTCPeerConnection:
    require_aiortc()
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

    # No default STUN server: with none given, host candidates only (LAN, loopback).
    servers = [RTCIceServer(s.url, s.username, s.credential) for s in ice_servers]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


async def make_offer(
    ice_servers: Sequence[IceServer], limits: ChannelLimits
) -> tuple[RTCPeerConnection, RTCDataChannel, str]:
    """A peer connection, its ``relay`` channel and the complete (non-trickle) offer SDP."""
    pc = _peer_connection(ice_servers)
    channel = pc.createDataChannel(CHANNEL_LABEL, ordered=True)
    try:
        # aiortc gathers every candidate inside setLocalDescription: that is the bound.
        await asyncio.wait_for(
            pc.setLocalDescription(await pc.createOffer()), limits.gather_timeout
        )
    except TimeoutError:
        await pc.close()
        raise NegotiationError("ICE gathering timed out") from None
    return pc, channel, pc.localDescription.sdp


async def make_answer(
    offer_sdp: str, ice_servers: Sequence[IceServer], limits: ChannelLimits
) -> tuple[RTCPeerConnection, str]:
    """A peer connection answering ``offer_sdp``, and its complete answer SDP."""
    from aiortc import RTCSessionDescription

    try:
        dtls_fingerprints(offer_sdp)
    except SdpError as exc:
        raise NegotiationError(f"bad offer: {exc}") from None
    if "\nm=application " not in offer_sdp:
        raise NegotiationError("bad offer: no data channel")
    pc = _peer_connection(ice_servers)
    try:
        await asyncio.wait_for(
            pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer")),
            limits.gather_timeout,
        )
        await asyncio.wait_for(
            pc.setLocalDescription(await pc.createAnswer()), limits.gather_timeout
        )
    except TimeoutError:
        await pc.close()
        raise NegotiationError("ICE gathering timed out") from None
    except ValueError as exc:  # aiortc's word for an SDP it cannot use
        await pc.close()
        raise NegotiationError(f"bad offer: {exc}") from None
    return pc, pc.localDescription.sdp


async def accept_answer(pc: RTCPeerConnection, answer_sdp: str) -> None:
    """Use an answer the caller has verified (signature and fingerprint) already."""
    from aiortc import RTCSessionDescription

    try:
        await pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
    except ValueError as exc:
        raise NegotiationError(f"bad answer: {exc}") from None


class MessagePipe:
    """Channel messages over one data channel: chunked on send, reassembled and decoded on
    receive, with a bounded inbound queue and a write pause on SCTP's buffered amount.

    A peer that breaks the framing or floods the queue gets its channel closed."""

    def __init__(self, channel: RTCDataChannel, limits: ChannelLimits) -> None:
        self.channel = channel
        self._joiner = Reassembler(limits.max_message)
        self._inbox: asyncio.Queue[ChannelMessage | None] = asyncio.Queue(limits.max_queue)
        self._drained = asyncio.Event()
        self._drained.set()
        self.closed = asyncio.Event()
        self.error: str | None = None
        channel.bufferedAmountLowThreshold = HIGH_WATER // 2
        channel.on("message", self._on_chunk)
        channel.on("close", self._on_close)
        channel.on("bufferedamountlow", self._drained.set)

    async def wait_open(self, timeout: float) -> None:
        if self.channel.readyState == "open":
            return
        opened = asyncio.Event()
        self.channel.on("open", opened.set)
        try:
            await asyncio.wait_for(opened.wait(), timeout)
        except TimeoutError:
            raise NegotiationError("data channel did not open in time") from None

    def _on_chunk(self, chunk: bytes | str) -> None:
        if self.closed.is_set():
            return
        try:
            data = self._joiner.feed(chunk if isinstance(chunk, bytes) else chunk.encode())
            if data is None:
                return
            message = decode_message(data)
        except (ChunkError, MessageError) as exc:
            self._fail(f"bad message: {exc}")
            return
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            self._fail("inbound queue full")

    def _fail(self, reason: str) -> None:
        log.warning("webrtc: closing the data channel: %s", reason)
        self.error = reason
        self.close()

    def _on_close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(asyncio.QueueFull):
                self._inbox.put_nowait(None)

    def close(self) -> None:
        self.channel.close()
        self._on_close()

    async def send(self, message: ChannelMessage) -> None:
        for chunk in split_message(encode_message(message)):
            if self.closed.is_set() or self.channel.readyState != "open":
                raise ConnectionError("data channel closed")
            if self.channel.bufferedAmount > HIGH_WATER:
                self._drained.clear()
                await self._drained.wait()
            self.channel.send(chunk)

    async def receive(self) -> ChannelMessage | None:
        """The next message, or None once the channel has closed."""
        if self.closed.is_set() and self._inbox.empty():
            return None
        return await self._inbox.get()

"""The connector's signed WebSocket: between the client (over the relay) and a local
server that knows nothing of signatures. Both hops are parsed with the ``websockets``
sans-IO protocol; each message from the client is an envelope checked by the
FrameCodec and passed on plain, each message from the local server goes out as a signed
envelope. A revocation closes it at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from websockets.exceptions import InvalidState
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side

from ..httpwire.channel import ByteChannel
from ..trust.frames import (
    POLICY_VIOLATION,
    FrameCodec,
    FrameError,
    close_payload,
    parse_close_payload,
)

log = logging.getLogger(__name__)

GOING_AWAY = 1001


class _Hop:
    """One side's protocol state and its channel; writes keep the protocol's order."""

    def __init__(self, channel: ByteChannel, side: Side, max_message: int) -> None:
        self.channel = channel
        self.protocol = Protocol(side, max_size=max_message)
        self._lock = asyncio.Lock()
        self._parts: list[bytes] = []
        self._opcode: Opcode | None = None
        self.max_message = max_message

    async def flush(self) -> None:
        async with self._lock:
            for data in self.protocol.data_to_send():
                if data:
                    await self.channel.write(data)
                else:
                    await self.channel.close()

    def messages(self, events: Sequence[object]) -> list[tuple[Opcode, bytes]]:
        """Whole messages (continuations joined), and control frames as they come."""
        out: list[tuple[Opcode, bytes]] = []
        for frame in events:
            if not isinstance(frame, Frame):
                continue
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                self._opcode = frame.opcode
                self._parts = [bytes(frame.data)]
            elif frame.opcode is Opcode.CONT:
                self._parts.append(bytes(frame.data))
            else:
                out.append((frame.opcode, bytes(frame.data)))
                continue
            if frame.fin and self._opcode is not None:
                out.append((self._opcode, b"".join(self._parts)))
                self._parts = []
                self._opcode = None
        return out


class SignedWebSocketBridge:
    def __init__(
        self,
        client: ByteChannel,
        upstream: ByteChannel,
        codec: FrameCodec,
        *,
        max_message: int,
    ) -> None:
        self.codec = codec
        self.client = _Hop(client, Side.SERVER, max_message)
        self.upstream = _Hop(upstream, Side.CLIENT, max_message)
        self._closing = asyncio.Event()

    def revoke(self) -> None:
        """Close now: the client is no longer trusted."""
        self._close_both(POLICY_VIOLATION, "client revoked")
        self._closing.set()

    def _close_both(self, code: int, reason: str) -> None:
        with contextlib.suppress(InvalidState, ValueError):
            self.client.protocol.send_text(
                self.codec.encode("close", close_payload(code, reason)).encode()
            )
        for hop, hop_code in ((self.client, code), (self.upstream, GOING_AWAY)):
            with contextlib.suppress(InvalidState, ValueError):
                hop.protocol.send_close(hop_code, reason)

    async def run(
        self, initial_from_client: bytes = b"", initial_from_upstream: bytes = b""
    ) -> None:
        tasks = [
            asyncio.create_task(
                self._pump(self.client, self.upstream, self._client_message, initial_from_client)
            ),
            asyncio.create_task(
                self._pump(
                    self.upstream, self.client, self._upstream_message, initial_from_upstream
                )
            ),
            asyncio.create_task(self._closing.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # One side ended (or a revocation): tell both, give the closes a moment.
            await self.client.flush()
            await self.upstream.flush()
            if tasks[2] in done:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        await asyncio.wait(tasks[:2])
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await asyncio.wait(tasks[:2])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            for task in tasks[:2]:
                if not task.cancelled() and task.exception() is not None:
                    log.debug("signed websocket: %r", task.exception())

    async def _pump(
        self, hop: _Hop, other: _Hop, on_message: Callable[[Opcode, bytes], None], initial: bytes
    ) -> None:
        """Feed one hop's bytes to its protocol, hand each message to ``on_message`` and
        flush both hops, until that hop's end of stream."""
        data = initial or await hop.channel.read()
        while True:
            if data:
                hop.protocol.receive_data(data)
            else:
                hop.protocol.receive_eof()
            for opcode, payload in hop.messages(hop.protocol.events_received()):
                on_message(opcode, payload)
            await hop.flush()
            await other.flush()
            if not data:
                return
            data = await hop.channel.read()

    def _client_message(self, opcode: Opcode, payload: bytes) -> None:
        upstream = self.upstream.protocol
        if opcode is Opcode.CLOSE:  # the client's WebSocket close (the protocol answered it)
            close = Close.parse(payload) if payload else None
            with contextlib.suppress(InvalidState):
                upstream.send_close(close.code if close else 1000, close.reason if close else "")
            return
        if opcode not in (Opcode.TEXT, Opcode.BINARY):
            return  # transport ping/pong: answered by the protocol
        try:
            msg_type, body = self.codec.decode(payload)
        except FrameError as exc:
            log.warning("signed websocket: %s; closing", exc)
            self._close_both(POLICY_VIOLATION, exc.reason)
            self._closing.set()
            return
        with contextlib.suppress(InvalidState):
            if msg_type == "text":
                upstream.send_text(body)
            elif msg_type == "binary":
                upstream.send_binary(body)
            elif msg_type == "ping":
                self.client.protocol.send_text(self.codec.encode("pong", body).encode())
            elif msg_type == "close":
                code, reason = parse_close_payload(body)
                if not 1000 <= code < 5000 or code in (1005, 1006):
                    code = 1000
                self._close_both(code, reason)

    def _upstream_message(self, opcode: Opcode, payload: bytes) -> None:
        client = self.client.protocol
        with contextlib.suppress(InvalidState):
            if opcode is Opcode.TEXT:
                client.send_text(self.codec.encode("text", payload).encode())
            elif opcode is Opcode.BINARY:
                client.send_text(self.codec.encode("binary", payload).encode())
            elif opcode is Opcode.CLOSE:
                close = Close.parse(payload) if payload else None
                code = close.code if close else 1000
                reason = close.reason if close else ""
                client.send_text(self.codec.encode("close", close_payload(code, reason)).encode())
                client.send_close(code if code not in (1005, 1006) else 1000, reason)

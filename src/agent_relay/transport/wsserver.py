"""The server end of a WebSocket on a socket we already parsed the HTTP request from.

The relay runs its own HTTP/1.1 server (so that proxied upgrades can be spliced as raw
bytes), so it does the control channel's WebSocket with the sans-IO protocol of the
``websockets`` library: this module is the thin asyncio layer over it. The result is a
byte stream as in :mod:`.websocket`: binary writes, any message read as bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable

from websockets.datastructures import Headers
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from .sockopts import quick_ack, set_nodelay, tcp_socket
from .websocket import DEFAULT_MAX_MESSAGE

READ_SIZE = 256 * 1024
# Largest frame a peer may send us; a yamux frame is at most 16 MiB plus its header, and
# a peer splitting its writes into messages never needs more.
MAX_INCOMING_FRAME = 16 * 1024 * 1024 + 4096


class WebSocketServerStream:
    """A server-side WebSocket over asyncio streams, as a byte stream.

    A data frame's payload is taken out of its event (which is left empty): the
    library's parser keeps a reference to the last frame it parsed until the next one
    is complete, which on an idle control channel is the next keepalive, 30 s later.
    Without this, every host that last sent a large message (up to 1 MiB) would keep it
    in the relay's memory that long.
    """

    def __init__(
        self,
        protocol: ServerProtocol,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        self._protocol = protocol
        self._reader = reader
        self._writer = writer
        self._max_message = max_message
        self._pending: deque[bytes] = deque()
        self._eof = False
        self._socket = tcp_socket(writer.transport)
        set_nodelay(self._socket)

    async def read(self) -> bytes:
        while not self._pending:
            if self._eof:
                return b""
            try:
                data = await self._reader.read(READ_SIZE)
            except ConnectionError:
                data = b""
            if data:
                quick_ack(self._socket)
                self._protocol.receive_data(data)
            else:
                self._protocol.receive_eof()
                self._eof = True
            for event in self._protocol.events_received():
                if isinstance(event, Frame):
                    if event.opcode in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
                        payload, event.data = event.data, b""
                        if payload:
                            self._pending.append(bytes(payload))
                    elif event.opcode is Opcode.CLOSE:
                        self._eof = True
            if self._protocol.state is State.CLOSED:
                self._eof = True
            await self._flush()  # pongs and the close handshake's answer
        return self._pending.popleft()

    async def write(self, data: bytes) -> None:
        if self._protocol.state is not State.OPEN:
            raise ConnectionResetError("websocket is closed")
        step = self._max_message
        view = memoryview(data)
        for start in range(0, len(data), step):
            self._protocol.send_binary(view[start : start + step])
        await self._flush()

    async def close(self) -> None:
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(CloseCode.NORMAL_CLOSURE)
            with contextlib.suppress(ConnectionError):
                await self._flush()
        self._writer.close()

    async def _flush(self) -> None:
        chunks = self._protocol.data_to_send()
        data = b"".join(chunks)
        if data:
            self._writer.write(data)
            await self._writer.drain()
        if chunks and not chunks[-1]:  # the protocol asks to end the TCP connection
            self._writer.close()


def handshake(
    method: str, target: str, headers: Iterable[tuple[bytes, bytes]]
) -> tuple[ServerProtocol, Response]:
    """Check a WebSocket upgrade request; the response is 101 or a refusal to send.

    The returned protocol only speaks the handshake (the HTTP request was parsed by our
    server, not fed to it); use :func:`open_protocol` for the frames that follow.
    """
    protocol = ServerProtocol()
    request = Request(
        path=target,
        headers=Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]),
        method=method,
    )
    response = protocol.accept(request)
    protocol.send_response(response)
    return protocol, response


def response_bytes(protocol: ServerProtocol) -> bytes:
    return b"".join(protocol.data_to_send())


def open_protocol() -> ServerProtocol:
    """A server protocol past its handshake: it parses frames from the first byte."""
    return ServerProtocol(state=State.OPEN, max_size=MAX_INCOMING_FRAME)

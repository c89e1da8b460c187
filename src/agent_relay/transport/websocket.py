"""A WebSocket seen as one continuous byte stream.

Each write goes out as binary messages; every message read (binary or text) is appended
to the stream, whatever its boundaries; a close is the end of the stream. WebSocket
pings are answered by the library and never show up in the stream.
"""

from __future__ import annotations

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from .sockopts import quick_ack, set_nodelay, tcp_socket

# Receivers with default settings accept messages up to 1 MiB; stay within that.
DEFAULT_MAX_MESSAGE = 1024 * 1024


class WebSocketByteStream:
    def __init__(self, websocket: Connection, *, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.websocket = websocket
        self._max_message = max_message
        self._socket = tcp_socket(getattr(websocket, "transport", None))
        set_nodelay(self._socket)

    async def read(self) -> bytes:
        while True:
            try:
                message = await self.websocket.recv(decode=False)
            except ConnectionClosed:
                return b""
            quick_ack(self._socket)
            if message:  # an empty message is not the end of the stream
                return message if isinstance(message, bytes) else bytes(message)

    async def write(self, data: bytes) -> None:
        step = self._max_message
        try:
            if len(data) <= step:
                await self.websocket.send(data)
                return
            view = memoryview(data)
            for start in range(0, len(data), step):
                await self.websocket.send(view[start : start + step])
        except ConnectionClosed as exc:
            raise ConnectionResetError(f"websocket closed: {exc}") from None

    async def close(self) -> None:
        await self.websocket.close()

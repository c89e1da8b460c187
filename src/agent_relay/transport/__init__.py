"""Byte streams a yamux session can run over: a WebSocket, or a plain socket."""

from .tcp import SocketByteStream
from .websocket import WebSocketByteStream

__all__ = ["SocketByteStream", "WebSocketByteStream"]

"""Byte streams a yamux session can run over: a WebSocket, or a plain socket (the
socket adapter is httpwire's, shared with HTTP)."""

from ..httpwire.channel import SocketByteStream
from .websocket import WebSocketByteStream

__all__ = ["SocketByteStream", "WebSocketByteStream"]

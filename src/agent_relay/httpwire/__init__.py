"""HTTP/1.1 over one byte stream (a socket or a yamux stream), with streaming bodies and
raw splicing after ``101 Switching Protocols``. Framing is the sans-IO codec's
(``codec.py``); this is the I/O glue."""

from .channel import ByteChannel, SocketChannel
from .connection import HttpConnection, HttpProtocolError
from .splice import splice

__all__ = ["ByteChannel", "HttpConnection", "HttpProtocolError", "SocketChannel", "splice"]

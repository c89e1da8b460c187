"""HTTP/1.1 over one byte stream (a socket or a yamux stream), with streaming bodies and
raw splicing after ``101 Switching Protocols``. Parsing is h11's; this is the I/O glue."""

from .channel import ByteChannel, SocketChannel
from .connection import HttpConnection, HttpProtocolError
from .splice import splice

__all__ = ["ByteChannel", "HttpConnection", "HttpProtocolError", "SocketChannel", "splice"]

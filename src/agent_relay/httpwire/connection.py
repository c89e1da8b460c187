"""One side of an HTTP/1.1 connection over a :class:`ByteChannel`, driven by the sans-IO
codec (``codec.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from ..errors import HttpError
from . import codec
from .channel import READ_SIZE, ByteChannel
from .codec import (
    DONE,
    NEED_DATA,
    PAUSED,
    SEND_BODY,
    SWITCHED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
    Response,
)

if TYPE_CHECKING:
    import h11

    # Tests and tools may hand in h11's events; the hot path uses the codec's own.
    AnyHead = Request | Response | h11.Request | h11.Response | h11.InformationalResponse
    AnyEvent = AnyHead | Data | EndOfMessage | h11.Data | h11.EndOfMessage

DEFAULT_MAX_HEAD = 128 * 1024
# Body pieces handed on, or channel reads taken, in a row before giving the event loop a
# turn: a peer that sends a body as thousands of tiny chunks or frames, all of them
# already buffered, must not keep every other connection waiting while they are parsed.
YIELD_EVERY = 16


class HttpProtocolError(HttpError):
    """The peer broke HTTP/1.1; ``status`` is the answer a server should give."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, message or "bad request")


def as_head(head: AnyHead) -> Request | Response:
    """A head in the codec's own form (h11 events converted)."""
    if type(head) in (Request, Response, InformationalResponse):
        return head  # type: ignore[return-value]
    headers = codec.lower_headers(head.headers)
    version = bytes(head.http_version)
    method = getattr(head, "method", None)
    if method is not None:
        return Request(bytes(method), bytes(getattr(head, "target", b"")), headers, version)
    status = int(getattr(head, "status_code", 0))
    kind = InformationalResponse if status < 200 else Response
    return kind(status, headers, bytes(getattr(head, "reason", b"")), version)


class HttpConnection:
    """Reads and writes HTTP/1.1 messages; bodies are streamed, never buffered whole."""

    def __init__(
        self,
        channel: ByteChannel,
        *,
        client: bool,
        max_head_size: int = DEFAULT_MAX_HEAD,
        read_size: int = READ_SIZE,
    ) -> None:
        self.channel = channel
        self._codec = codec.Connection(client=client, max_head_size=max_head_size)
        self._read_size = read_size
        self._max_head = max_head_size
        self._peeked: codec.Event | None = None  # see body_ready()
        self._peeked_error: codec.ProtocolError | None = None  # the same, an error
        self._held = b""  # a head from start_message(), not written yet
        self._bypassed = False  # a body was read past the codec (receive_long_body)

    # ----------------------------------------------------------------- reading

    async def _next_event(self) -> codec.Event | codec._Signal:
        if self._peeked is not None:
            peeked, self._peeked = self._peeked, None
            return peeked
        if self._peeked_error is not None:
            exc = self._peeked_error
            raise HttpProtocolError(str(exc), exc.status) from None
        conn = self._codec
        while True:
            try:
                event = conn.next_event()
            except codec.ProtocolError as exc:
                raise HttpProtocolError(str(exc), exc.status) from None
            if event is not NEED_DATA:
                return event
            data = await self.channel.read(self._read_size)
            try:
                conn.receive_data(data)
            except RuntimeError as exc:
                raise HttpProtocolError(str(exc)) from None

    async def receive_request(self) -> Request | None:
        """The next request head, or None if the peer closed between requests."""
        event = await self._next_event()
        if type(event) is Request:
            if _head_size(event.target, event.headers) > self._max_head:
                raise HttpProtocolError("request head too large", 431)
            return event
        if type(event) is ConnectionClosed:
            return None
        raise HttpProtocolError(f"expected a request, got {_name(event)}")

    async def receive_response(self) -> Response:
        """The final response head, or a ``101`` that switches protocols."""
        while True:
            event = await self._next_event()
            if isinstance(event, Response):
                # The codec bounds heads that arrive in pieces; one that came whole is
                # checked here.
                if _head_size(event.reason, event.headers) > self._max_head:
                    raise HttpProtocolError("response head too large", 502)
                if type(event) is Response or event.status_code == 101:
                    return event
                continue  # 100 Continue and friends are not forwarded
            if type(event) is ConnectionClosed:
                raise HttpProtocolError("connection closed before a response", 502)
            raise HttpProtocolError(f"expected a response, got {_name(event)}", 502)

    async def receive_body(self) -> AsyncIterator[bytes]:
        """The body of the message just received, piece by piece as it arrives."""
        if self._codec.they_are_waiting_for_100_continue:
            # The client holds its body back until told to go on (curl does above 1 MiB,
            # then gives up waiting after a second); reading it is our go-ahead.
            await self.send(InformationalResponse(100, []))
        in_a_row = 0
        while True:
            event = await self._next_event()
            if type(event) is Data:
                if event.data:
                    yield event.data
                in_a_row += 1
                if in_a_row >= YIELD_EVERY:
                    in_a_row = 0
                    await asyncio.sleep(0)
            elif type(event) is EndOfMessage:
                return
            elif type(event) is ConnectionClosed:
                raise HttpProtocolError("connection closed in the middle of a body", 502)
            else:
                raise HttpProtocolError(f"unexpected {_name(event)} in a body", 502)

    async def receive_long_body(self, length: int) -> AsyncIterator[bytes]:
        """Like :meth:`receive_body`, for a body of ``length`` bytes (its Content-Length):
        what the codec holds already comes through it, the rest straight from the
        channel, as read (fewer copies); the price is that the connection cannot be
        reused afterwards (the codec never saw the end)."""
        seen = 0
        while self.body_ready():
            event = await self._next_event()
            if type(event) is Data:
                seen += len(event.data)
                if event.data:
                    yield event.data
            elif type(event) is EndOfMessage:
                return  # the codec knew better (a body it had whole, or none at all)
            else:
                raise HttpProtocolError(f"unexpected {_name(event)} in a body", 502)
        self._bypassed = True
        in_a_row = 0
        while seen < length:
            data = await self.channel.read(min(self._read_size, length - seen))
            if not data:
                raise HttpProtocolError("connection closed in the middle of a body", 502)
            seen += len(data)
            yield data
            in_a_row += 1
            if in_a_row >= YIELD_EVERY:
                in_a_row = 0
                await asyncio.sleep(0)

    def body_ready(self) -> bool:
        """The next event of the message being received is here already: reading it will
        not wait for the peer."""
        if self._peeked is None:
            if self._peeked_error is not None:
                return True
            try:
                event = self._codec.next_event()
            except codec.ProtocolError as exc:
                self._peeked_error = exc  # the read raises it
                return True
            if event is NEED_DATA or event is PAUSED:
                return event is PAUSED
            self._peeked = event
        return True

    async def discard_body(self, limit: int) -> bool:
        """Read and drop what is left of the peer's message, so the connection can serve
        the next one; False (do not reuse) if more than ``limit`` bytes are left."""
        if self._peeked is None and self._codec.their_state is not SEND_BODY:
            return True
        seen = 0
        async for chunk in self.receive_body():
            seen += len(chunk)
            if seen > limit:
                return False
        return True

    # ----------------------------------------------------------------- writing

    async def send(self, event: AnyEvent) -> None:
        """Send a head, a body piece or the end (codec or h11 events)."""
        kind = type(event).__name__
        if kind == "Data":
            await self.send_data(bytes(event.data))  # type: ignore[union-attr]
        elif kind == "EndOfMessage":
            await self.end_message()
        else:
            await self._write(self._send_head(event))  # type: ignore[arg-type]

    def _send_head(self, head: AnyHead) -> bytes:
        try:
            return self._codec.send_head(as_head(head))
        except codec.ProtocolError as exc:
            raise codec.LocalProtocolError(str(exc)) from None

    def start_message(self, head: AnyHead) -> None:
        """Queue a message head: it goes out in one write with the next body bytes (or the
        end), instead of a write of its own. For a body that is already at hand; a head
        must not wait for one that may take a while (an event stream)."""
        self._held += self._send_head(head)

    async def _write(self, data: bytes) -> None:
        if self._held:
            data, self._held = self._held + data, b""
        if data:
            await self.channel.write(data)

    async def send_message(self, head: AnyHead, body: bytes) -> None:
        """A whole small message in one write: head, body and end."""
        conn = self._codec
        data = self._send_head(head)
        if body:
            data += conn.send_data(body)
        data += conn.send_end()
        await self._write(data)

    async def send_data(self, data: bytes) -> None:
        if data:
            await self._write(self._codec.send_data(data))

    async def end_message(self) -> None:
        await self._write(self._codec.send_end())

    # ----------------------------------------------------------------- state

    @property
    def switched_protocol(self) -> bool:
        return self._codec.our_state is SWITCHED

    @property
    def head_sent(self) -> bool:
        """Our message's head has gone out (or was started for one write)."""
        return self._codec.our_state in (SEND_BODY, DONE, SWITCHED)

    @property
    def can_reuse(self) -> bool:
        """Both sides finished their message and nobody asked to close."""
        if self._bypassed:
            return False
        return self._codec.can_reuse

    @property
    def request_done(self) -> bool:
        """The peer's message (for a server: the request body) was read to its end."""
        return self._codec.peer_finished

    def start_next_cycle(self) -> None:
        if type(self._peeked) is EndOfMessage:
            self._peeked = None  # the end of the message just finished
        self._codec.start_next_cycle()

    def keep_received(self, data: bytes) -> None:
        """Bytes read off the channel by someone else (a watch for the peer leaving):
        the codec keeps them for the next message."""
        self._codec.receive_data(data)

    def trailing_data(self) -> bytes:
        """Bytes that arrived after the message head that switched protocols."""
        return self._codec.trailing_data


def _name(event: object) -> str:
    return event.name if isinstance(event, codec._Signal) else type(event).__name__


def _head_size(first_line: bytes, headers: Sequence[tuple[bytes, bytes]]) -> int:
    return len(first_line) + sum(len(name) + len(value) + 4 for name, value in headers)

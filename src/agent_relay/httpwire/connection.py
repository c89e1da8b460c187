"""One side of an HTTP/1.1 connection over a :class:`ByteChannel`, driven by h11."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import h11

from ..errors import HttpError
from .channel import READ_SIZE, ByteChannel

DEFAULT_MAX_HEAD = 64 * 1024


class HttpProtocolError(HttpError):
    """The peer broke HTTP/1.1; ``status`` is the answer a server should give."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, message or "bad request")


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
        self._h11 = h11.Connection(
            h11.CLIENT if client else h11.SERVER, max_incomplete_event_size=max_head_size
        )
        self._read_size = read_size
        self._max_head = max_head_size
        self._peeked: h11.Event | type[h11.PAUSED] | None = None  # see event_ready()
        self._peeked_error: h11.RemoteProtocolError | None = None  # the same, an error
        self._held = b""  # a head from start_message(), not written yet
        self._bypassed = False  # a body was read past h11 (receive_long_body)

    # ----------------------------------------------------------------- reading

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        if self._peeked is not None:
            peeked, self._peeked = self._peeked, None
            return peeked
        if self._peeked_error is not None:
            exc = self._peeked_error
            raise HttpProtocolError(str(exc), exc.error_status_hint) from None
        conn = self._h11
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpProtocolError(str(exc), exc.error_status_hint) from None
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            data = await self.channel.read(self._read_size)
            try:
                conn.receive_data(data)
            except h11.RemoteProtocolError as exc:
                raise HttpProtocolError(str(exc), exc.error_status_hint) from None

    async def receive_request(self) -> h11.Request | None:
        """The next request head, or None if the peer closed between requests."""
        event = await self._next_event()
        if isinstance(event, h11.Request):
            if _head_size(event.target, event.headers) > self._max_head:
                raise HttpProtocolError("request head too large", 431)
            return event
        if isinstance(event, h11.ConnectionClosed):
            return None
        raise HttpProtocolError(f"expected a request, got {type(event).__name__}")

    async def receive_response(self) -> h11.Response | h11.InformationalResponse:
        """The final response head, or a ``101`` that switches protocols."""
        while True:
            event = await self._next_event()
            # h11 bounds heads that arrive in pieces; one that came whole is checked here.
            if (
                isinstance(event, (h11.Response, h11.InformationalResponse))
                and _head_size(event.reason, event.headers) > self._max_head
            ):
                raise HttpProtocolError("response head too large", 502)
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return event
                continue  # 100 Continue and friends are not forwarded
            if isinstance(event, h11.ConnectionClosed):
                raise HttpProtocolError("connection closed before a response", 502)
            raise HttpProtocolError(f"expected a response, got {type(event).__name__}", 502)

    async def receive_body(self) -> AsyncIterator[bytes]:
        """The body of the message just received, chunk by chunk as it arrives."""
        if self._h11.they_are_waiting_for_100_continue:
            # The client holds its body back until told to go on (curl does above 1 MiB,
            # then gives up waiting after a second); reading it is our go-ahead.
            await self.send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                if event.data:
                    yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpProtocolError("connection closed in the middle of a body", 502)
            else:
                raise HttpProtocolError(f"unexpected {type(event).__name__} in a body", 502)

    async def receive_long_body(self, length: int) -> AsyncIterator[bytes]:
        """Like :meth:`receive_body`, for a body of ``length`` bytes (its Content-Length):
        what h11 holds already comes through it, the rest straight from the channel, as
        read. h11 would copy every byte twice more; the price is that the connection
        cannot be reused afterwards (h11 never saw the end)."""
        seen = 0
        while self.body_ready():
            event = await self._next_event()
            if isinstance(event, h11.Data):
                seen += len(event.data)
                if event.data:
                    yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return  # h11 knew better (a body it had whole, or none at all)
            else:
                raise HttpProtocolError(f"unexpected {type(event).__name__} in a body", 502)
        self._bypassed = True
        while seen < length:
            data = await self.channel.read(min(self._read_size, length - seen))
            if not data:
                raise HttpProtocolError("connection closed in the middle of a body", 502)
            seen += len(data)
            yield data

    def body_ready(self) -> bool:
        """The next event of the message being received is here already: reading it will
        not wait for the peer."""
        if self._peeked is None:
            if self._peeked_error is not None:
                return True
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._peeked_error = exc  # the read raises it
                return True
            if event is h11.NEED_DATA:
                return False
            self._peeked = event  # type: ignore[assignment]
        return True

    async def discard_body(self, limit: int) -> bool:
        """Read and drop what is left of the peer's message, so the connection can serve
        the next one; False (do not reuse) if more than ``limit`` bytes are left."""
        if self._peeked is None and self._h11.their_state is not h11.SEND_BODY:
            return True
        seen = 0
        async for chunk in self.receive_body():
            seen += len(chunk)
            if seen > limit:
                return False
        return True

    # ----------------------------------------------------------------- writing

    async def send(self, event: h11.Event) -> None:
        await self._write(self._h11.send(event) or b"")

    def start_message(self, head: h11.Response | h11.Request) -> None:
        """Queue a message head: it goes out in one write with the next body bytes (or the
        end), instead of a write of its own. For a body that is already at hand; a head
        must not wait for one that may take a while (an event stream)."""
        self._held += self._h11.send(head) or b""

    async def _write(self, data: bytes) -> None:
        if self._held:
            data, self._held = self._held + data, b""
        if data:
            await self.channel.write(data)

    async def send_message(self, head: h11.Response | h11.Request, body: bytes) -> None:
        """A whole small message in one write: head, body and end."""
        conn = self._h11
        data = conn.send(head) or b""
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await self._write(data)

    async def send_data(self, data: bytes) -> None:
        if data:
            await self.send(h11.Data(data=data))

    async def end_message(self) -> None:
        await self.send(h11.EndOfMessage())

    # ----------------------------------------------------------------- state

    @property
    def switched_protocol(self) -> bool:
        return self._h11.our_state is h11.SWITCHED_PROTOCOL

    @property
    def can_reuse(self) -> bool:
        """Both sides finished their message and nobody asked to close."""
        if self._bypassed:
            return False
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    @property
    def request_done(self) -> bool:
        """The peer's message (for a server: the request body) was read to its end."""
        return self._h11.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)

    def start_next_cycle(self) -> None:
        if isinstance(self._peeked, h11.EndOfMessage):
            self._peeked = None  # the end of the message just finished
        self._h11.start_next_cycle()

    def trailing_data(self) -> bytes:
        """Bytes that arrived after the message head that switched protocols."""
        return bytes(self._h11.trailing_data[0])


def _head_size(first_line: bytes, headers: Sequence[tuple[bytes, bytes]]) -> int:
    return len(first_line) + sum(len(name) + len(value) + 4 for name, value in headers)

"""asyncio layer over the sans-IO yamux :class:`~agent_relay.mux.connection.Connection`.

One reader task feeds transport bytes to the connection and dispatches events; one writer
task ships whatever the connection queued, so writes made in the same loop iteration are
coalesced into one transport write. Stream writers wait for send window and for the
writer to drain below a high-water mark, so memory stays bounded end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol, Self

from .budget import BufferAccount, ReceiveBudget
from .config import MuxConfig
from .connection import Connection
from .errors import (
    MuxError,
    PingTimeoutError,
    SessionClosedError,
    StreamClosedError,
    StreamResetError,
)
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoAwayReceived,
    PingAcknowledged,
    SendWindowUpdated,
    StreamAcknowledged,
    StreamEnded,
    StreamOpened,
    StreamReset,
)
from .frame import GoAwayCode

log = logging.getLogger(__name__)

# Frames that need not leave at once (the ACK of a stream we accepted, our FIN) wait this
# long for other frames to travel with: a request's ACK goes out with its response, and
# the FIN closing one exchange with the next stream's SYN, in one transport write each.
LAZY_FLUSH_DELAY = 0.002


class ByteStream(Protocol):
    """What a session runs over: an ordered, reliable byte stream."""

    async def read(self) -> bytes:
        """The next bytes available; ``b""`` at end of stream."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


def _settle(fut: asyncio.Future[None] | None, exc: BaseException | None = None) -> None:
    if fut is not None and not fut.done():
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)
            # The error is also raised to whoever calls next; never "never retrieved".
            fut.exception()


class MuxStream:
    """One yamux stream: an ordered byte stream in each direction."""

    __slots__ = (
        "_ack_waiter",
        "_acked",
        "_chunks",
        "_conn",
        "_eof",
        "_error",
        "_held",
        "_hold",
        "_max_send_window",
        "_on_failure",
        "_open_timer",
        "_read_waiter",
        "_session",
        "_window_waiter",
        "_write_closed",
        "_write_lock",
        "stream_id",
    )

    def __init__(self, session: MuxSession, stream_id: int) -> None:
        self._session = session
        self._conn = session._conn
        self.stream_id = stream_id
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self._error: MuxError | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._window_waiter: asyncio.Future[None] | None = None
        self._ack_waiter: asyncio.Future[None] | None = None
        self._acked = False
        self._write_lock = asyncio.Lock()
        self._write_closed = False
        self._open_timer: asyncio.TimerHandle | None = None
        self._max_send_window = 0
        self._on_failure: Callable[[MuxError], None] | None = None
        self._hold = False  # see hold_until_next_read
        self._held = 0

    def __repr__(self) -> str:
        return f"<MuxStream {self.stream_id}>"

    # ----------------------------------------------------------------- reading

    def hold_until_next_read(self) -> None:
        """From now on, what a read returns still counts as buffered (against this
        stream's window and the session's receive budget) until the next read.

        For a reader that passes each chunk on before it reads again (the relay's
        download to a client): the bytes it handed to a client that does not read sit
        in that client's socket buffer, and a peer must not be granted more window for
        them, or a stalled client would cost the relay its window and that buffer both.
        """
        self._hold = True

    async def read(self, max_bytes: int = 256 * 1024) -> bytes:
        """Up to ``max_bytes`` (at least one byte), or ``b""`` once the peer closed."""
        if self._held:
            held, self._held = self._held, 0
            self._session._consumed(self.stream_id, held)
        while not self._chunks:
            if self._eof:
                return b""
            if self._error is not None:
                raise self._error
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        chunk = self._chunks[0]
        if len(chunk) <= max_bytes:
            self._chunks.popleft()
        else:
            self._chunks[0] = chunk[max_bytes:]
            chunk = chunk[:max_bytes]
        if self._hold:
            self._held = len(chunk)
        else:
            self._session._consumed(self.stream_id, len(chunk))
        return chunk

    async def readexactly(self, size: int) -> bytes:
        parts: list[bytes] = []
        need = size
        while need:
            chunk = await self.read(need)
            if not chunk:
                raise asyncio.IncompleteReadError(b"".join(parts), size)
            parts.append(chunk)
            need -= len(chunk)
        return b"".join(parts)

    async def read_all(self, limit: int) -> bytes:
        """Everything until the peer's FIN; raise ValueError past ``limit`` bytes."""
        parts: list[bytes] = []
        total = 0
        while chunk := await self.read():
            total += len(chunk)
            if total > limit:
                raise ValueError(f"stream sent more than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    # ----------------------------------------------------------------- writing

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, waiting for window and transport as needed."""
        if not isinstance(data, bytes):
            data = bytes(data)  # the queued frames keep a view: it must not change
        view = memoryview(data)
        session = self._session
        async with self._write_lock:
            while view:
                self._check_writable()
                sent = self._conn.send_data(self.stream_id, view)
                if sent:
                    view = view[sent:]
                    session._wake_writer()
                if view:
                    self._window_waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._window_waiter
                    finally:
                        self._window_waiter = None
                await session._wait_drained()

    async def drain(self) -> None:
        """Wait until the session's queued output is below its high-water mark."""
        await self._session._wait_drained()

    def _check_writable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._write_closed:
            raise StreamClosedError(f"stream {self.stream_id} is closed for writing")

    async def close(self) -> None:
        """Half-close: no more writes; reading goes on until the peer closes too."""
        async with self._write_lock:
            if self._write_closed or self._error is not None:
                return
            self._write_closed = True
            self._session._close_stream(self.stream_id)

    def reset(self) -> None:
        """Abort the stream in both directions (RST)."""
        if self._error is None:
            self._on_failure = None  # our own doing: nothing to tell
            self._session._reset_stream(self.stream_id)
            self._fail(StreamResetError(f"stream {self.stream_id} was reset locally"))

    def on_failure(self, callback: Callable[[MuxError], None] | None) -> None:
        """Call ``callback`` once, at once, if the peer resets the stream or the session
        ends (now, if that happened already); None stops it. Cheaper than a task kept
        waiting on a read to learn it."""
        if callback is not None and self._error is not None:
            callback(self._error)
            return
        self._on_failure = callback

    async def wait_acknowledged(self) -> None:
        """Wait for the peer to accept a stream we opened."""
        while not self._acked:
            if self._error is not None:
                raise self._error
            self._ack_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._ack_waiter
            finally:
                self._ack_waiter = None

    @property
    def send_window(self) -> int:
        return self._conn.send_window(self.stream_id)

    @property
    def max_send_window(self) -> int:
        """Largest send window the peer granted, also after the stream has ended."""
        return max(self._max_send_window, self._conn.max_send_window(self.stream_id))

    # ----------------------------------------------------------------- events

    def _on_data(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._chunks.append(data)
        _settle(self._read_waiter)

    def _on_eof(self) -> None:
        self._eof = True
        _settle(self._read_waiter)

    def _on_window(self) -> None:
        self._max_send_window = max(
            self._max_send_window, self._conn.max_send_window(self.stream_id)
        )
        _settle(self._window_waiter)

    def _on_ack(self) -> None:
        self._acked = True
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        _settle(self._ack_waiter)

    def _fail(self, error: MuxError, *, keep_data: bool = False) -> None:
        """Fail pending and later calls; ``keep_data`` lets readers take what arrived."""
        if self._error is not None:
            return
        self._error = error
        if not keep_data:
            self._chunks.clear()
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        _settle(self._read_waiter, error)
        _settle(self._window_waiter, error)
        _settle(self._ack_waiter, error)
        callback, self._on_failure = self._on_failure, None
        if callback is not None:
            callback(error)


class MuxSession:
    """A yamux session over a :class:`ByteStream`. ``client`` uses odd stream ids."""

    def __init__(
        self,
        transport: ByteStream,
        *,
        client: bool,
        config: MuxConfig | None = None,
        name: str = "",
        budget: ReceiveBudget | None = None,
    ) -> None:
        self._conn = Connection(client=client, config=config, budget=budget)
        self.config = self._conn.config
        self._transport = transport
        self.name = name or ("mux-client" if client else "mux-server")
        self._streams: dict[int, MuxStream] = {}
        self._backlog: deque[MuxStream] = deque()
        self._accept_waiter: asyncio.Future[None] | None = None
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._ping_ids = itertools.count(1)
        self._writer_wake = asyncio.Event()
        self._drain_waiters: deque[asyncio.Future[None]] = deque()
        self._idle_waiter: asyncio.Future[None] | None = None
        self._closed_error: SessionClosedError | None = None
        self.close_reason = ""
        self._loop = asyncio.get_running_loop()
        self._lazy_flush: asyncio.TimerHandle | None = None
        self._tasks = [
            asyncio.create_task(self._read_loop(), name=f"{self.name}-read"),
            asyncio.create_task(self._write_loop(), name=f"{self.name}-write"),
        ]
        if self.config.keepalive_interval:
            self._tasks.append(
                asyncio.create_task(self._keepalive_loop(), name=f"{self.name}-keepalive")
            )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ----------------------------------------------------------------- state

    @property
    def closed(self) -> bool:
        return self._closed_error is not None

    @property
    def num_streams(self) -> int:
        return self._conn.num_streams

    @property
    def remote_go_away(self) -> int | None:
        """The code of the peer's Go Away, or None if it sent none."""
        return self._conn.remote_go_away

    # ----------------------------------------------------------------- streams

    async def open_stream(self, account: BufferAccount | None = None) -> MuxStream:
        """A new stream; what it receives and is not read yet also counts in ``account``."""
        if self._closed_error is not None:
            raise self._closed_error
        stream_id = self._conn.open_stream(account)
        stream = MuxStream(self, stream_id)
        self._streams[stream_id] = stream
        stream._open_timer = self._loop.call_later(
            self.config.stream_open_timeout, self._open_timed_out, stream
        )
        self._wake_writer()
        return stream

    async def accept_stream(self) -> MuxStream:
        """The next stream the peer opened; SessionClosedError once the session ends."""
        while True:
            while not self._backlog:
                if self._closed_error is not None:
                    raise self._closed_error
                self._accept_waiter = self._loop.create_future()
                try:
                    await self._accept_waiter
                finally:
                    self._accept_waiter = None
            stream = self._backlog.popleft()
            if self._conn.accept_stream(stream.stream_id):
                self._wake_writer_lazily()
                return stream
            # Reset by the peer while it waited: skip it.

    async def ping(self, timeout: float | None = None) -> float:
        """Round-trip time of one yamux ping, in seconds."""
        if self._closed_error is not None:
            raise self._closed_error
        opaque = next(self._ping_ids) & 0xFFFF_FFFF
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._pings[opaque] = waiter
        started = self._loop.time()
        self._conn.ping(opaque)
        self._wake_writer()
        try:
            async with asyncio.timeout(timeout or self.config.keepalive_timeout):
                await waiter
        except TimeoutError:
            raise PingTimeoutError("ping not answered in time") from None
        finally:
            self._pings.pop(opaque, None)
        return self._loop.time() - started

    def go_away(self) -> None:
        """Tell the peer we accept no new streams; open streams continue."""
        self._conn.go_away()
        self._wake_writer()

    async def close(self, *, drain_timeout: float | None = None) -> None:
        """Close the session with Go Away (normal).

        With ``drain_timeout``, first refuse new streams and give open ones that long to
        finish.
        """
        if drain_timeout and self._closed_error is None:
            self.go_away()
            if self._conn.num_streams:
                self._idle_waiter = self._loop.create_future()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(drain_timeout):
                        await self._idle_waiter
        if self._closed_error is None:
            self._handle(self._conn.close(GoAwayCode.NORMAL, "closed locally"))
            self._wake_writer()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the session has ended and its tasks have finished."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ----------------------------------------------------------------- internals

    def _wake_writer(self) -> None:
        self._writer_wake.set()

    def _wake_writer_lazily(self) -> None:
        """Flush within LAZY_FLUSH_DELAY, sooner if anything else is written."""
        if self._lazy_flush is None and not self._writer_wake.is_set():
            self._lazy_flush = self._loop.call_later(LAZY_FLUSH_DELAY, self._lazy_flush_due)

    def _lazy_flush_due(self) -> None:
        self._lazy_flush = None
        self._wake_writer()

    async def _wait_drained(self) -> None:
        """Wait while the queued output is above the high-water mark.

        Waiters queue in order and are woken one at a time, each passing the turn on once
        it has queued its data, so a flush does not wake every blocked writer at once.
        """
        if self._closed_error is not None:
            return
        if self._conn.pending_output > self.config.write_high_water or self._drain_waiters:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                with contextlib.suppress(ValueError):
                    self._drain_waiters.remove(waiter)
                self._pass_drain_turn()
                raise
        self._pass_drain_turn()

    def _pass_drain_turn(self) -> None:
        if self._drain_waiters and self._conn.pending_output <= self.config.write_high_water:
            _settle(self._drain_waiters.popleft())

    def _release_drain_waiters(self) -> None:
        """Wake every blocked writer: the session is over and they must see it."""
        waiters, self._drain_waiters = self._drain_waiters, deque()
        for waiter in waiters:
            _settle(waiter)

    def _consumed(self, stream_id: int, size: int) -> None:
        queued = self._conn.pending_output
        self._conn.consume(stream_id, size)
        if self._conn.pending_output > queued:  # a window update
            self._wake_writer()

    def _close_stream(self, stream_id: int) -> None:
        self._conn.close_stream(stream_id)
        self._wake_writer_lazily()
        self._forget_if_gone(stream_id)

    def _reset_stream(self, stream_id: int) -> None:
        self._conn.reset_stream(stream_id)
        self._wake_writer()
        self._forget_if_gone(stream_id)

    def _forget_if_gone(self, stream_id: int) -> None:
        if not self._conn.has_stream(stream_id):
            self._streams.pop(stream_id, None)
            if not self._conn.num_streams and self._idle_waiter is not None:
                _settle(self._idle_waiter)

    def _open_timed_out(self, stream: MuxStream) -> None:
        stream._open_timer = None
        if not stream._acked and stream._error is None:
            log.warning("%s: stream %d not acknowledged in time", self.name, stream.stream_id)
            self._reset_stream(stream.stream_id)
            stream._fail(StreamResetError(f"stream {stream.stream_id} open timed out"))

    def _handle(self, events: list[Event]) -> None:
        streams = self._streams
        for event in events:
            if isinstance(event, DataReceived):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._on_data(event.data)
            elif isinstance(event, SendWindowUpdated):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._on_window()
            elif isinstance(event, StreamOpened):
                stream = MuxStream(self, event.stream_id)
                stream._acked = True
                streams[event.stream_id] = stream
                self._backlog.append(stream)
                _settle(self._accept_waiter)
            elif isinstance(event, StreamAcknowledged):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._on_ack()
            elif isinstance(event, StreamEnded):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._on_eof()
                    self._forget_if_gone(event.stream_id)
            elif isinstance(event, StreamReset):
                stream = streams.pop(event.stream_id, None)
                if stream is not None:
                    stream._fail(StreamResetError(f"stream {event.stream_id} reset by peer"))
                self._forget_if_gone(event.stream_id)
            elif isinstance(event, PingAcknowledged):
                _settle(self._pings.get(event.opaque))
            elif isinstance(event, GoAwayReceived):
                if event.code != GoAwayCode.NORMAL:
                    log.warning("%s: peer sent go away with code %d", self.name, event.code)
            elif isinstance(event, ConnectionTerminated):
                self._on_terminated(event)

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        if self._closed_error is not None:
            return
        self.close_reason = event.reason
        if event.code != GoAwayCode.NORMAL:
            log.warning("%s: session ended: %s", self.name, event.reason)
        error = SessionClosedError(f"session closed: {event.reason}")
        self._closed_error = error
        for stream in list(self._streams.values()):
            stream._fail(error, keep_data=True)
        self._streams.clear()
        self._backlog.clear()
        _settle(self._accept_waiter)
        _settle(self._idle_waiter)
        for waiter in self._pings.values():
            _settle(waiter, error)
        self._release_drain_waiters()
        self._wake_writer()

    def _abort(self, reason: str) -> None:
        """End the session without waiting on the transport (it is broken or stuck)."""
        self._handle(self._conn.receive_eof())
        self.close_reason = reason
        log.warning("%s: %s", self.name, reason)

    async def _read_loop(self) -> None:
        try:
            while self._closed_error is None:
                data = await self._transport.read()
                if not data:
                    break
                queued = self._conn.pending_output
                self._handle(self._conn.receive_data(data))
                # Not kept while the next read waits: on an idle channel that is until the
                # next keepalive, and the message may be as large as the peer likes.
                del data
                if self._conn.pending_output > queued:  # replies: pings, resets
                    self._wake_writer()
        except (OSError, EOFError) as exc:
            log.debug("%s: transport read failed: %r", self.name, exc)
        finally:
            self._handle(self._conn.receive_eof())

    async def _write_loop(self) -> None:
        conn = self._conn
        try:
            while True:
                await self._writer_wake.wait()
                self._writer_wake.clear()
                if self._lazy_flush is not None:
                    self._lazy_flush.cancel()  # what it waited for leaves now
                    self._lazy_flush = None
                while data := conn.data_to_send():
                    # Writers may queue the next batch while this one is in flight; at most
                    # about twice the high-water mark is held.
                    self._pass_drain_turn()
                    async with asyncio.timeout(self.config.write_timeout):
                        await self._transport.write(data)
                if conn.terminated:
                    break
        except TimeoutError:
            self._abort("transport write timed out")
        except (OSError, EOFError) as exc:
            self._abort(f"transport write failed: {exc!r}")
        finally:
            self._release_drain_waiters()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.config.write_timeout):
                    await self._transport.close()
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def _keepalive_loop(self) -> None:
        interval = self.config.keepalive_interval
        assert interval is not None
        while self._closed_error is None:
            await asyncio.sleep(interval)
            try:
                await self.ping(self.config.keepalive_timeout)
            except PingTimeoutError:
                self._abort("keepalive ping not answered; closing session")
                self._wake_writer()
                return
            except SessionClosedError:
                return

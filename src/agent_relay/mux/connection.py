"""Sans-IO yamux session: bytes in, events out; calls in, bytes to send out.

The connection never touches a socket or a clock. The driving layer feeds received bytes
to :meth:`Connection.receive_data`, acts on the returned events, calls the stream methods,
and ships :meth:`Connection.data_to_send` to the transport. Any protocol violation by the
peer ends the session with a Go Away carrying the protocol-error code; nothing raises out
of ``receive_data``.
"""

from __future__ import annotations

from typing import Final

from .. import _native
from .budget import BufferAccount, ReceiveBudget
from .config import MuxConfig
from .errors import (
    GoAwayError,
    MuxError,
    SessionClosedError,
    StreamClosedError,
    StreamIdsExhaustedError,
    StreamResetError,
    TooManyStreamsError,
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
from .frame import (
    ALL_FLAGS,
    HEADER_SIZE,
    HEADER_STRUCT,
    INITIAL_WINDOW,
    MAX_U32,
    Flag,
    FrameError,
    FrameType,
    GoAwayCode,
    decode_header,
)

# Peers open streams from several threads, so SYNs may arrive out of id order: ids the
# peer skipped over are remembered (this many at most) and may still be opened later.
_SKIPPED_MEMORY: Final = 1024

# How many streams we reset are remembered, so that frames the peer sent before it saw
# our RST are dropped quietly instead of being taken for a protocol violation.
_RESET_MEMORY: Final = 1024

_SYN: Final = int(Flag.SYN)
_ACK: Final = int(Flag.ACK)
_FIN: Final = int(Flag.FIN)
_RST: Final = int(Flag.RST)
_DATA: Final = int(FrameType.DATA)
_WINDOW_UPDATE: Final = int(FrameType.WINDOW_UPDATE)
_UNKNOWN_FLAGS: Final = ~ALL_FLAGS
_unpack_header = HEADER_STRUCT.unpack_from
_pack_header = HEADER_STRUCT.pack
_installed = _native.installed()
_split_frames = None if _installed is None else _installed.split_frames


class _ProtocolViolation(Exception):
    pass


class _StreamState:
    __slots__ = (
        "accepted",
        "account",
        "acked",
        "buffered",
        "incoming",
        "local_closed",
        "max_send_window",
        "recv_window",
        "remote_closed",
        "send_window",
    )

    def __init__(self, *, incoming: bool, recv_window: int) -> None:
        self.incoming = incoming
        self.accepted = False
        self.acked = False
        self.send_window = INITIAL_WINDOW
        self.max_send_window = INITIAL_WINDOW
        # Credit the peer still has: bytes it may send before our next window update.
        self.recv_window = recv_window
        # Received bytes the application has not consumed yet.
        self.buffered = 0
        self.local_closed = False
        self.remote_closed = False
        # Where ``buffered`` is also counted, if anywhere (budget.BufferAccount).
        self.account: BufferAccount | None = None


class Connection:
    """One yamux session, either side. ``client`` sessions use odd stream ids.

    With a ``budget`` (shared with other sessions), window grants are sized by it
    (budget.py); without, every stream may have up to ``max_stream_window``.
    """

    def __init__(
        self,
        *,
        client: bool,
        config: MuxConfig | None = None,
        budget: ReceiveBudget | None = None,
    ) -> None:
        self.client = client
        self.config = config or MuxConfig()
        # Dropped (and everything charged to it released) once the session ends.
        self._budget = budget
        self._next_id = 1 if client else 2
        self._last_remote_id = 0
        self._skipped_remote_ids: set[int] = set()
        self._streams: dict[int, _StreamState] = {}
        self._reset_by_us: dict[int, None] = {}  # insertion-ordered, bounded
        self._unaccepted = 0
        self._partial_header = bytearray()
        # Data frame whose payload is still arriving: stream (0 = discard), bytes left, flags.
        self._payload_stream = 0
        self._payload_left = 0
        self._payload_flags = 0
        self._out: list[bytes | memoryview] = []
        self._out_size = 0
        self._control_pending = 0
        self._events: list[Event] = []
        self.local_go_away = False
        self.remote_go_away: int | None = None
        self.terminated = False

    # ----------------------------------------------------------------- inspection

    @property
    def num_streams(self) -> int:
        return len(self._streams)

    @property
    def pending_output(self) -> int:
        """Bytes queued by :meth:`data_to_send` callers have not taken yet."""
        return self._out_size

    def has_stream(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def send_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.send_window if st else 0

    def max_send_window(self, stream_id: int) -> int:
        """Largest send window the peer has granted on this stream so far."""
        st = self._streams.get(stream_id)
        return st.max_send_window if st else 0

    # ----------------------------------------------------------------- output

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        self._control_pending = 0
        return data

    def _queue(self, frame_type: int, flags: int, stream_id: int, length: int) -> None:
        self._out.append(_pack_header(0, frame_type, flags, stream_id, length))
        self._out_size += HEADER_SIZE

    def _queue_reply(self, frame_type: int, flags: int, stream_id: int, length: int) -> None:
        """Queue a frame the peer provoked; a peer that provokes but never reads is cut off."""
        self._queue(frame_type, flags, stream_id, length)
        self._control_pending += HEADER_SIZE
        if self._control_pending > self.config.max_pending_control:
            raise _ProtocolViolation("peer provokes control frames without reading them")

    # ----------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the transport; return the events they caused."""
        if self.terminated or not data:
            return []
        try:
            pos = 0
            if self._partial_header:
                need = HEADER_SIZE - len(self._partial_header)
                self._partial_header += data[:need]
                if len(self._partial_header) < HEADER_SIZE:
                    return self._take_events()
                header = bytes(self._partial_header)
                self._partial_header.clear()
                self._on_header(header, 0)
                pos = need
            pos = self._parse(data, pos)
            if pos < len(data) and not self.terminated:
                self._partial_header += data[pos:]
        except _ProtocolViolation as exc:
            self._terminate(GoAwayCode.PROTOCOL_ERROR, str(exc))
        return self._take_events()

    def receive_eof(self) -> list[Event]:
        """The transport ended. The session is over; nothing more is sent."""
        if not self.terminated:
            self.terminated = True
            self._release_budget()
            self._events.append(
                ConnectionTerminated(GoAwayCode.NORMAL, "connection closed", sent_go_away=False)
            )
        return self._take_events()

    def _take_events(self) -> list[Event]:
        events = self._events
        self._events = []
        return events

    def _parse_pure(self, data: bytes, pos: int) -> int:
        end = len(data)
        while pos < end and not self.terminated:
            if self._payload_left:
                pos = self._take_payload(data, pos, end)
                continue
            if end - pos < HEADER_SIZE:
                break
            self._on_header(data, pos)
            pos += HEADER_SIZE
        return pos

    def _parse_compiled(self, data: bytes, pos: int) -> int:
        """As _parse_pure, the frames split by the compiled core in one call."""
        end = len(data)
        if self._payload_left and pos < end:  # the rest of a data frame's payload
            pos = self._take_payload(data, pos, end)
            if self._payload_left:
                return pos
        assert _split_frames is not None
        frames, stop = _split_frames(data, pos)
        on_fields = self._on_fields
        for version, kind, flags, stream_id, length, payload in frames:
            on_fields(version, kind, flags, stream_id, length)
            if payload is not None:
                take = len(payload)
                if take and self._payload_stream:
                    self._events.append(DataReceived(self._payload_stream, payload))
                self._payload_left = length - take
                if not self._payload_left:
                    self._finish_data_frame()
        return stop

    def _take_payload(self, data: bytes, pos: int, end: int) -> int:
        """What ``data`` holds of the current data frame's payload from ``pos`` on, as
        an event (none for a stream we dropped); the position after it."""
        left = self._payload_left
        take = min(left, end - pos)
        if self._payload_stream:
            chunk = data if take == end and pos == 0 else data[pos : pos + take]
            self._events.append(DataReceived(self._payload_stream, chunk))
        self._payload_left = left - take
        if not self._payload_left:
            self._finish_data_frame()
        return pos + take

    # The compiled core's frame splitting when it is built; a subclass may pick the other
    # (the differential tests do).
    _parse = _parse_pure if _native.core is None else _parse_compiled

    def _on_header(self, data: bytes, pos: int) -> None:
        self._on_fields(*_unpack_header(data, pos))

    def _on_fields(self, version: int, kind: int, flags: int, stream_id: int, length: int) -> None:
        # The frames of every request (data, window updates on a stream) straight from the
        # struct; the rest, and anything invalid, through decode_header's checks.
        if not version and kind <= _WINDOW_UPDATE and stream_id and not flags & _UNKNOWN_FLAGS:
            if kind == _DATA:
                self._on_data_header(stream_id, flags, length)
            else:
                self._on_window_update(stream_id, flags, length)
            return
        try:
            header = decode_header(_pack_header(version, kind, flags, stream_id, length))
        except FrameError as exc:
            raise _ProtocolViolation(str(exc)) from None
        kind = header.type
        if kind is FrameType.PING:
            if header.flags & _SYN:
                self._queue_reply(FrameType.PING, _ACK, 0, header.length)
            else:
                self._events.append(PingAcknowledged(header.length))
        else:
            self.remote_go_away = header.length
            self._events.append(GoAwayReceived(header.length))

    def _on_data_header(self, stream_id: int, flags: int, length: int) -> None:
        st = self._stream_for(_DATA, stream_id, flags, length)
        if st is not None:
            if st.remote_closed and length:
                raise _ProtocolViolation(f"data after FIN on stream {stream_id}")
            if length > st.recv_window:
                raise _ProtocolViolation(
                    f"data frame of {length} bytes exceeds the window of {st.recv_window}"
                    f" on stream {stream_id}"
                )
            st.recv_window -= length
            st.buffered += length
            if st.account is not None:
                st.account.add(length)
        self._payload_stream = stream_id if st is not None else 0
        self._payload_left = length
        self._payload_flags = flags
        if not length:
            self._finish_data_frame()
        elif st is None:
            self._payload_flags = 0

    def _finish_data_frame(self) -> None:
        stream_id, flags = self._payload_stream, self._payload_flags
        self._payload_stream = 0
        self._payload_flags = 0
        if stream_id and flags & (_FIN | _RST):
            st = self._streams.get(stream_id)
            if st is not None:
                self._apply_close_flags(stream_id, st, flags)

    def _on_window_update(self, stream_id: int, flags: int, length: int) -> None:
        st = self._stream_for(_WINDOW_UPDATE, stream_id, flags, length)
        if st is None:
            return
        if length:
            st.send_window += length
            if st.send_window > MAX_U32:
                raise _ProtocolViolation(f"send window overflow on stream {stream_id}")
            if st.send_window > st.max_send_window:
                st.max_send_window = st.send_window
            self._events.append(SendWindowUpdated(stream_id))
        if flags & (_FIN | _RST):
            self._apply_close_flags(stream_id, st, flags)

    def _stream_for(
        self, kind: int, stream_id: int, flags: int, length: int
    ) -> _StreamState | None:
        """The stream a data or window-update frame is for, opening it on SYN.

        None means: drop the frame quietly (a stream we reset or refused).
        """
        if flags & _SYN:
            return self._on_syn(stream_id)
        st = self._streams.get(stream_id)
        if st is None:
            if stream_id in self._reset_by_us:
                return None
            ours = (stream_id & 1) == (1 if self.client else 0)
            if (ours and stream_id >= self._next_id) or (
                not ours and stream_id > self._last_remote_id
            ):
                raise _ProtocolViolation(f"frame for stream {stream_id} that was never opened")
            if kind == _DATA and length:
                raise _ProtocolViolation(f"data on closed stream {stream_id}")
            return None
        if flags & _ACK and not st.incoming and not st.acked:
            st.acked = True
            self._events.append(StreamAcknowledged(stream_id))
        return st

    def _on_syn(self, stream_id: int) -> _StreamState | None:
        if (stream_id & 1) == (1 if self.client else 0):
            raise _ProtocolViolation(f"peer opened stream {stream_id} of our parity")
        last = self._last_remote_id
        if stream_id > last:
            skipped = self._skipped_remote_ids
            first = last + 2 if last else (2 if self.client else 1)
            skipped.update(range(max(first, stream_id - 2 * _SKIPPED_MEMORY), stream_id, 2))
            if len(skipped) > _SKIPPED_MEMORY:
                for old in sorted(skipped)[: len(skipped) - _SKIPPED_MEMORY]:
                    skipped.discard(old)
            self._last_remote_id = stream_id
        elif stream_id in self._skipped_remote_ids:
            self._skipped_remote_ids.discard(stream_id)
        else:
            raise _ProtocolViolation(f"peer reused stream id {stream_id}")
        cfg = self.config
        if (
            self.local_go_away
            or self._unaccepted >= cfg.accept_backlog
            or len(self._streams) >= cfg.max_streams
        ):
            self._remember_reset(stream_id)
            self._queue_reply(_WINDOW_UPDATE, _RST, stream_id, 0)
            return None
        st = _StreamState(incoming=True, recv_window=INITIAL_WINDOW)
        self._streams[stream_id] = st
        if self._budget is not None:
            self._budget.add_stream(INITIAL_WINDOW)
        self._unaccepted += 1
        self._events.append(StreamOpened(stream_id))
        return st

    def _apply_close_flags(self, stream_id: int, st: _StreamState, flags: int) -> None:
        if flags & _RST:
            self._drop(stream_id, st)
            self._events.append(StreamReset(stream_id))
            return
        if st.remote_closed:
            return
        st.remote_closed = True
        self._events.append(StreamEnded(stream_id))
        if st.local_closed:
            self._drop(stream_id, st)

    def _drop(self, stream_id: int, st: _StreamState) -> None:
        del self._streams[stream_id]
        _settle_account(st)
        if self._budget is not None:
            self._budget.remove_stream(st.recv_window + st.buffered)
        if st.incoming and not st.accepted:
            self._unaccepted -= 1

    def _remember_reset(self, stream_id: int) -> None:
        self._reset_by_us[stream_id] = None
        if len(self._reset_by_us) > _RESET_MEMORY:
            del self._reset_by_us[next(iter(self._reset_by_us))]

    # ----------------------------------------------------------------- streams

    def open_stream(self, account: BufferAccount | None = None) -> int:
        """Open a stream (SYN, granting our full receive window); return its id. What
        it receives and is not read yet is also counted in ``account``."""
        if self.terminated:
            raise SessionClosedError("session is closed")
        if self.local_go_away or self.remote_go_away is not None:
            raise GoAwayError("session is going away; no new streams")
        if len(self._streams) >= self.config.max_streams:
            raise TooManyStreamsError(f"limit of {self.config.max_streams} streams reached")
        stream_id = self._next_id
        if stream_id > MAX_U32:
            raise StreamIdsExhaustedError("stream ids exhausted; open a new session")
        self._next_id += 2
        st = _StreamState(incoming=False, recv_window=INITIAL_WINDOW)
        st.account = account
        self._streams[stream_id] = st
        if self._budget is not None:
            self._budget.add_stream(INITIAL_WINDOW)
        delta = max(0, self._window_target(st) - INITIAL_WINDOW)
        self._grant(st, delta)
        self._queue(_WINDOW_UPDATE, _SYN, stream_id, delta)
        return stream_id

    def accept_stream(self, stream_id: int) -> bool:
        """Acknowledge a stream the peer opened. False if it is gone already."""
        st = self._streams.get(stream_id)
        if st is None or not st.incoming or st.accepted or self.terminated:
            return False
        st.accepted = True
        self._unaccepted -= 1
        delta = max(0, self._window_target(st) - st.buffered - st.recv_window)
        self._grant(st, delta)
        self._queue(_WINDOW_UPDATE, _ACK, stream_id, delta)
        return True

    def send_data(self, stream_id: int, data: bytes | memoryview) -> int:
        """Queue as much of ``data`` as the send window allows; return how much."""
        if self.terminated:
            raise SessionClosedError("session is closed")
        st = self._streams.get(stream_id)
        if st is None:
            raise StreamResetError(f"stream {stream_id} was reset")
        if st.local_closed:
            raise StreamClosedError(f"stream {stream_id} is closed for writing")
        if st.incoming and not st.accepted:
            raise MuxError(f"stream {stream_id} has not been accepted")
        total = min(len(data), st.send_window)
        if not total:
            return 0
        step = self.config.max_frame_payload
        out = self._out
        sent = 0
        while sent < total:
            size = min(step, total - sent)
            out.append(_pack_header(0, _DATA, 0, stream_id, size))
            out.append(data[sent : sent + size])
            sent += size
        st.send_window -= total
        self._out_size += total + HEADER_SIZE * ((total + step - 1) // step)
        return total

    def close_stream(self, stream_id: int) -> None:
        """Half-close: send FIN. Reading may go on until the peer's FIN."""
        st = self._streams.get(stream_id)
        if st is None or st.local_closed or self.terminated:
            return
        st.local_closed = True
        flags = _FIN
        if st.incoming and not st.accepted:
            st.accepted = True
            self._unaccepted -= 1
            flags |= _ACK
        self._queue(_WINDOW_UPDATE, flags, stream_id, 0)
        if st.remote_closed:
            self._drop(stream_id, st)

    def reset_stream(self, stream_id: int) -> None:
        st = self._streams.get(stream_id)
        if st is None:
            return
        self._drop(stream_id, st)
        self._remember_reset(stream_id)
        if not self.terminated:
            self._queue(_WINDOW_UPDATE, _RST, stream_id, 0)

    def consume(self, stream_id: int, size: int) -> None:
        """The application read ``size`` bytes: free buffer, grant window when due."""
        st = self._streams.get(stream_id)
        if st is None:
            return
        st.buffered -= size
        if st.account is not None:
            st.account.add(-size)
        if self._budget is not None:
            self._budget.release(size)
        if st.remote_closed or (st.incoming and not st.accepted) or self.terminated:
            return
        window = self._window_target(st)
        delta = window - st.buffered - st.recv_window
        if delta >= window // 2:
            self._grant(st, delta)
            self._queue(_WINDOW_UPDATE, 0, stream_id, delta)

    def _window_target(self, st: _StreamState) -> int:
        """The receive window ``st`` should have now (buffered bytes + credit)."""
        window = self.config.max_stream_window
        if self._budget is None:
            return window
        return self._budget.window_for(window, st.buffered + st.recv_window)

    def _grant(self, st: _StreamState, delta: int) -> None:
        st.recv_window += delta
        if self._budget is not None:
            self._budget.charge(delta)

    def _release_budget(self) -> None:
        """The session is over: nothing it holds counts against the budget any more."""
        budget, self._budget = self._budget, None
        for st in self._streams.values():
            _settle_account(st)
            if budget is not None:
                budget.remove_stream(st.recv_window + st.buffered)

    # ----------------------------------------------------------------- session

    def ping(self, opaque: int) -> None:
        if self.terminated:
            raise SessionClosedError("session is closed")
        self._queue(FrameType.PING, _SYN, 0, opaque & MAX_U32)

    def go_away(self, code: int = GoAwayCode.NORMAL) -> None:
        """Refuse new streams from now on and tell the peer; open streams go on."""
        if self.local_go_away or self.terminated:
            return
        self.local_go_away = True
        self._queue(FrameType.GO_AWAY, 0, 0, code)

    def close(self, code: int = GoAwayCode.NORMAL, reason: str = "closed") -> list[Event]:
        """End the session: queue Go Away (unless sent already) and report termination."""
        if not self.terminated:
            self._terminate(code, reason)
        return self._take_events()

    def _terminate(self, code: int, reason: str) -> None:
        if not self.local_go_away or code != GoAwayCode.NORMAL:
            self.local_go_away = True
            self._queue(FrameType.GO_AWAY, 0, 0, code)
        self.terminated = True
        self._release_budget()
        self._payload_left = 0
        self._partial_header.clear()
        self._events.append(ConnectionTerminated(code, reason))


def _settle_account(st: _StreamState) -> None:
    """The stream is gone (or its session): its bytes no longer count in its account."""
    account, st.account = st.account, None
    if account is not None and st.buffered:
        account.add(-st.buffered)

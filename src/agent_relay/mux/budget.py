"""A receive budget shared by many yamux sessions: how many bytes their peers may send
us before we have read them, in all, across every stream.

Each stream's share is what its peer may have in our buffers now or soon: the bytes
received and not yet read, plus the window credit still granted. Without a budget every
stream may be granted the full ``max_stream_window``, so N streams whose readers stall
(a client that never reads its download) hold N full windows. With one, a grant is sized
so that the sum stays within ``limit``: windows get smaller as the budget fills, and as
more streams are open (each gets at most ``limit / streams``). A stream is never starved:
one with nothing buffered and no credit left is always granted ``min_window``, so the
budget can be passed by at most ``min_window`` per stream that is actually being read.

yamux gives every new stream an initial window the peer may use without a grant; that
is charged too (so the budget reflects what is really committed), but it cannot be
refused. Sans-IO, no locks: one event loop drives every session that shares it.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_WINDOW = 16 * 1024


@dataclass(slots=True, eq=False)
class BufferAccount:
    """What a group of streams holds in our buffers now, of any sessions: the bytes
    received and not yet read (or read and still held, see ``MuxStream.
    hold_until_next_read``). Unlike the budget, no credit: only bytes really here.

    The relay keeps one per user, inside one for the whole relay (``parent``), to decide
    whether that user may open another stream (relay/admission.py).
    """

    buffered: int = 0
    parent: BufferAccount | None = None

    def add(self, size: int) -> None:
        """``size`` more bytes held (negative: fewer)."""
        self.buffered += size
        if self.parent is not None:
            self.parent.buffered += size


@dataclass(slots=True)
class ReceiveBudget:
    limit: int
    min_window: int = MIN_WINDOW
    committed: int = 0  # bytes buffered or granted, all streams of all sessions
    streams: int = 0  # streams open on the sessions that share it

    def __post_init__(self) -> None:
        if self.limit < 1 or self.min_window < 1:
            raise ValueError("the budget's limit and min_window must be positive")

    @property
    def free(self) -> int:
        return self.limit - self.committed

    def window_for(self, max_window: int, held: int) -> int:
        """The window a stream should have now: at most ``max_window``, at most its share
        of the budget, at most what is free plus what the stream ``held`` already
        (buffered + credit); never below ``min_window``."""
        share = self.limit // max(1, self.streams)
        return max(self.min_window, min(max_window, share, self.free + held))

    def charge(self, size: int) -> None:
        self.committed += size

    def release(self, size: int) -> None:
        self.committed -= size

    def add_stream(self, initial: int) -> None:
        self.streams += 1
        self.committed += initial

    def remove_stream(self, held: int) -> None:
        self.streams -= 1
        self.committed -= held

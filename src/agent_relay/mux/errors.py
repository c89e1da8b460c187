"""Errors raised by the yamux API."""

from __future__ import annotations


class MuxError(Exception):
    """Base class of yamux errors."""


class SessionClosedError(MuxError):
    """The session is closed (locally, by the peer, or after a protocol error)."""


class GoAwayError(MuxError):
    """The peer sent Go Away (or we did): no new streams may be opened."""


class TooManyStreamsError(MuxError):
    """The session's limit of open streams is reached."""


class StreamIdsExhaustedError(MuxError):
    """All stream ids of our parity have been used; open a new session."""


class StreamResetError(MuxError):
    """The stream was reset (by the peer, by us, or after an open timeout)."""


class StreamClosedError(MuxError):
    """Write after our side of the stream was closed."""


class PingTimeoutError(MuxError):
    """The peer did not answer a ping in time."""

"""Events the sans-IO yamux connection reports to the layer that drives it.

Not frozen: a frozen dataclass sets each field through ``object.__setattr__``, several
times the cost of a plain one, and a few are made for every request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class StreamOpened:
    """The peer opened a stream; it waits in the backlog until accepted."""

    stream_id: int


@dataclass(slots=True)
class StreamAcknowledged:
    """The peer accepted a stream we opened."""

    stream_id: int


@dataclass(slots=True)
class DataReceived:
    stream_id: int
    data: bytes


@dataclass(slots=True)
class StreamEnded:
    """The peer half-closed its side (FIN): no more data will arrive."""

    stream_id: int


@dataclass(slots=True)
class StreamReset:
    """The peer reset the stream (RST)."""

    stream_id: int


@dataclass(slots=True)
class SendWindowUpdated:
    """The peer granted more send window; blocked writers may go on."""

    stream_id: int


@dataclass(slots=True)
class PingAcknowledged:
    opaque: int


@dataclass(slots=True)
class GoAwayReceived:
    """The peer will accept no new streams; existing ones continue."""

    code: int


@dataclass(slots=True)
class ConnectionTerminated:
    """The session is over: a Go Away is queued (if ``sent_go_away``) and the transport
    should be flushed and closed. ``code`` is the Go Away code we sent."""

    code: int
    reason: str
    sent_go_away: bool = True


Event = (
    StreamOpened
    | StreamAcknowledged
    | DataReceived
    | StreamEnded
    | StreamReset
    | SendWindowUpdated
    | PingAcknowledged
    | GoAwayReceived
    | ConnectionTerminated
)

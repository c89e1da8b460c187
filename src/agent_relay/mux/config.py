"""Settings of one yamux session. Defaults follow the reference relay."""

from __future__ import annotations

from dataclasses import dataclass

from .frame import INITIAL_WINDOW

MAX_RECEIVE_WINDOW_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MuxConfig:
    # Largest receive window granted to the peer per stream (the initial one is 256 KiB).
    max_stream_window: int = 1024 * 1024
    # Largest data frame we send; smaller frames interleave streams more fairly.
    max_frame_payload: int = 256 * 1024
    # Incoming streams not yet accepted by the application; past it new ones are reset.
    accept_backlog: int = 256
    # Streams open at once in both directions; past it, opens fail and SYNs are reset.
    max_streams: int = 4096
    # Seconds to wait for the peer's ACK of a stream we opened before resetting it.
    stream_open_timeout: float = 75.0
    # Keepalive: a ping every interval; no answer within the timeout ends the session.
    keepalive_interval: float | None = 30.0
    keepalive_timeout: float = 10.0
    # A transport write that takes longer than this ends the session.
    write_timeout: float = 30.0
    # Bytes queued for the transport above which stream writers wait (backpressure).
    write_high_water: int = 1024 * 1024
    # Unsent control frames (pings, window updates, resets) a peer may provoke while not
    # reading; past it the peer is treated as hostile and the session ends.
    max_pending_control: int = 64 * 1024

    def __post_init__(self) -> None:
        if not INITIAL_WINDOW <= self.max_stream_window <= MAX_RECEIVE_WINDOW_LIMIT:
            raise ValueError(
                f"max_stream_window must be within {INITIAL_WINDOW}..{MAX_RECEIVE_WINDOW_LIMIT}"
            )
        if self.max_frame_payload < 1024:
            raise ValueError("max_frame_payload must be at least 1024")
        if self.accept_backlog < 0 or self.max_streams < 1:
            raise ValueError("accept_backlog must be >= 0 and max_streams >= 1")
        if self.write_high_water < 1:
            raise ValueError("write_high_water must be positive")

"""Every size and count a data-channel peer controls, in one place."""

from __future__ import annotations

from dataclasses import dataclass

# The reference's chunk size: 60 KiB of payload after the 1-byte header.
CHUNK_PAYLOAD = 61_440


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    max_message: int = 1 << 20  # one reassembled JSON message (the reference buffers bodies)
    max_queue: int = 64  # messages waiting to be written, per peer (the reference's 64)
    max_peers_per_client: int = 2
    max_peers: int = 32
    idle_timeout: float = 300.0  # seconds without a message before the peer is closed
    max_in_flight: int = 64  # requests and WebSockets open at once, per peer
    gather_timeout: float = 5.0  # ICE gathering, non-trickle
    session_check: float = 0.5  # how often a channel checks its signing session is live
    # Streamed request bodies (the "upload" extension). Their size is the trust layer's
    # (TrustLimits.body_limit, 413 beyond, as through the relay); here: how many at once
    # per peer, how many bytes a client may send ahead of the host's reading (its credit,
    # also the most a peer's upload holds queued), and how long one may stall.
    max_uploads: int = 4
    upload_window: int = 1 << 20
    upload_idle_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_message", "max_queue", "max_peers_per_client", "max_peers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.max_uploads < 1:
            raise ValueError("max_uploads must be at least 1")
        if not 64 * 1024 <= self.upload_window <= 1 << 30:
            raise ValueError("upload_window must be in 64 KiB..1 GiB")
        if self.upload_idle_timeout <= 0:
            raise ValueError("upload_idle_timeout must be positive")
        if not 0 < self.gather_timeout <= 5.0:
            raise ValueError("gather_timeout must be in (0, 5] seconds")
        if self.session_check <= 0:
            raise ValueError("session_check must be positive")
        if self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")

"""Every time window and size bound of the trust layer, in one place."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TrustLimits:
    # Pairing.
    code_ttl: float = 600.0  # an enrollment code's life
    enrollment_ttl: float = 300.0  # between spake2/start and spake2/finish
    max_pending_enrollments: int = 64
    # Per client address: a burst of attempts, then one more every `pair_refill` seconds.
    pair_burst: int = 5
    pair_refill: float = 60.0
    max_tracked_addresses: int = 4096
    # Signing sessions.
    session_ttl: float = 3600.0
    session_idle: float = 900.0
    nonce_window: float = 120.0
    clock_window: float = 30.0
    max_nonce_length: int = 128
    max_nonces_per_session: int = 20_000
    max_sessions: int = 4096
    max_sessions_per_client: int = 32
    max_refresh_nonces: int = 20_000
    # Bodies.
    body_memory_limit: int = 8 * MIB  # request bodies kept in memory, then spilled to a file
    body_limit: int = 1024 * MIB  # request bodies beyond this: 413
    response_buffer_limit: int = 1 * MIB  # bigger (or unknown-length) answers are streamed
    max_ws_message: int = 16 * MIB  # one signed WebSocket envelope

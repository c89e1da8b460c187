"""Relay settings: the reference environment variables, and a flag for every option."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import AgentRelayError
from ..netaddr import split_host_port
from .auth import JwtSecret
from .forwarding import Network, trusted_proxies_from_environment
from .limits import UserLimits


class ConfigError(AgentRelayError, ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """How this replica is found and how quickly the others give up on it."""

    advertise: str  # host:port where the other replicas reach our link (the pod IP)
    listen_host: str = "0.0.0.0"  # noqa: S104 - the pod's own interface
    listen_port: int = 8083
    name: str = ""
    heartbeat: float = 1.0  # seconds between heartbeats (and sweeps)
    ttl: float = 4.0  # a replica silent this long is gone; its hosts go offline
    grace: float = 15.0  # a host released this recently is "moving", not offline: 503
    handoff_wait: float = 3.0  # how long a request waits for a moving host to land
    link_streams: int = 4096  # forwarded requests in flight per peer replica
    # Seconds between refreshes of last_seen_at of the hosts held here (one statement),
    # as a stand-alone relay's reconcile refreshes its live hosts'.
    seen_every: float = 30.0


@dataclass(frozen=True, slots=True)
class RelayConfig:
    listen_host: str = "0.0.0.0"  # noqa: S104 - a public relay listens on every interface
    listen_port: int = 8082
    database_url: str | None = None  # None: SQLite in the data dir
    shared_database: bool = False  # the remote API owns the schema: no DDL
    jwt_secret: JwtSecret = field(default_factory=JwtSecret.generate)
    # Request heads from clients and response heads from hosts: the reference passes heads
    # of 70 KB and more (browsers with many cookies, long signed URLs).
    max_head_size: int = 128 * 1024
    max_response_head: int = 128 * 1024
    # Twice the 256 connections a busy client (or a load test) keeps in flight, so the
    # cap sheds abuse rather than normal load; each stream's buffering is bounded by its
    # window (and by the relay-wide budget where there is one).
    max_streams_per_host: int = 512
    # For a host to start its answer (then 504): an agent waiting on a model or a long
    # poll may take minutes; a stalled body is cut by idle_timeout instead.
    response_timeout: float = 600.0
    idle_timeout: float = 300.0
    send_timeout: float = 60.0  # a write to a client that makes no progress
    total_timeout: float | None = None
    # Control-channel handshakes at once; more wait for a place (at most connect_queue of
    # them, for at most connect_wait seconds), beyond that 503 + Retry-After (relay/gate.py).
    max_concurrent_handshakes: int = 64
    connect_queue: int = 1024
    connect_wait: float = 8.0
    keepalive_interval: float = 30.0
    max_stream_window: int = 4 * 1024 * 1024
    # All hosts' streams together: bytes hosts may have in the relay's receive buffers
    # (mux/budget.py). Windows shrink as it fills, so stalled clients and a flooding host
    # cannot take the pod's memory; yamux's 256 KiB initial window per stream comes on top.
    buffer_budget: int = 32 * 1024 * 1024
    shutdown_timeout: float = 25.0
    session_cache_ttl: float = 5.0
    session_cache_size: int = 100_000
    limits: UserLimits = field(default_factory=UserLimits.from_environment)
    # Peers whose X-Forwarded-For is believed (forwarding.py).
    trusted_proxies: tuple[Network, ...] = field(default_factory=trusted_proxies_from_environment)
    # Proxied answers are sandboxed (relay/isolation.py); off only for a relay origin that
    # serves one trusted host's own pages and no web UI (docs/security.md).
    host_content_sandbox: bool = True
    web_ui: bool = True  # the remote web UI at / (never with the sandbox off)
    # One of several replicas on one PostgreSQL (docs/replicas.md); None: the only one.
    replica: ReplicaConfig | None = None
    # One line per proxied exchange on the agent_relay.access logger (accesslog.py).
    access_log: bool = False
    # Serve /metrics there instead of on the public port (None: on the public port).
    metrics_listen: tuple[str, int] | None = None


def parse_listen_addr(value: str, name: str = "RELAY_LISTEN_ADDR") -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::]:8082``) as the reference's RELAY_LISTEN_ADDR; port 0
    is any free port. ``name`` is how the user gave it, for the message."""
    try:
        return split_host_port(value, default_host="0.0.0.0")  # noqa: S104
    except ValueError:
        raise ConfigError(f"{name} must be HOST:PORT, got {value!r}") from None


def database_url_from_env(env: Mapping[str, str]) -> str | None:
    return env.get("SERVER_DATABASE_URL") or env.get("DATABASE_URL") or None

"""Relay settings: the reference environment variables, and a flag for every option."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import AgentRelayError
from ..netaddr import split_host_port
from .auth import JwtSecret


class ConfigError(AgentRelayError, ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RelayConfig:
    listen_host: str = "0.0.0.0"  # noqa: S104 - a public relay listens on every interface
    listen_port: int = 8082
    database_url: str | None = None  # None: SQLite in the data dir
    shared_database: bool = False  # the remote API owns the schema: no DDL
    jwt_secret: JwtSecret = field(default_factory=JwtSecret.generate)
    max_head_size: int = 16 * 1024
    max_streams_per_host: int = 256
    response_timeout: float = 60.0
    idle_timeout: float = 300.0
    total_timeout: float | None = None
    keepalive_interval: float = 30.0
    max_stream_window: int = 4 * 1024 * 1024
    shutdown_timeout: float = 25.0
    session_cache_ttl: float = 5.0
    session_cache_size: int = 100_000


def parse_listen_addr(value: str) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::]:8082``) as the reference's RELAY_LISTEN_ADDR."""
    try:
        return split_host_port(value, default_host="0.0.0.0", allow_port_zero=False)  # noqa: S104
    except ValueError:
        raise ConfigError(f"RELAY_LISTEN_ADDR must be host:port, got {value!r}") from None


def database_url_from_env(env: Mapping[str, str]) -> str | None:
    return env.get("SERVER_DATABASE_URL") or env.get("DATABASE_URL") or None

"""Per-user caps on what one account may make the relay keep (issue 11 item 5).

Set by environment (no flag needed in the sidecar's deployment):
``AGENT_RELAY_MAX_HOSTS_PER_USER`` (default 100), ``AGENT_RELAY_MAX_SESSIONS_PER_USER``
(live relay sessions, default 1000) and ``AGENT_RELAY_SESSION_IDLE_TIMEOUT`` (seconds a
relay session may go unused before it is refused and stops counting, default 86400).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class LimitsError(ValueError):
    """A limit variable that is not a positive number; the message names it."""


@dataclass(frozen=True, slots=True)
class UserLimits:
    max_hosts_per_user: int = 100
    max_sessions_per_user: int = 1000
    session_idle_timeout: float = 24 * 3600.0
    # Unknown relay session ids are answered from memory this long (a guessed id must not
    # cost a database query each time), for at most this many ids.
    unknown_session_ttl: float = 10.0
    unknown_session_cache_size: int = 10_000

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> UserLimits:
        defaults = cls()
        return cls(
            max_hosts_per_user=int(
                _number(environ, "AGENT_RELAY_MAX_HOSTS_PER_USER", defaults.max_hosts_per_user)
            ),
            max_sessions_per_user=int(
                _number(
                    environ, "AGENT_RELAY_MAX_SESSIONS_PER_USER", defaults.max_sessions_per_user
                )
            ),
            session_idle_timeout=_number(
                environ, "AGENT_RELAY_SESSION_IDLE_TIMEOUT", defaults.session_idle_timeout
            ),
        )


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise LimitsError(f"{name} must be a positive number, got {raw!r}") from None
    if not 0 < value < 1e12:
        raise LimitsError(f"{name} must be a positive number, got {raw!r}")
    return value

"""The host connector: dials out to the relay and serves each relayed request from the
local agent server (see ``connector.py`` for the loop, ``forward.py`` for one request)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .backoff import Backoff, BackoffPolicy
    from .connector import Connector, ConnectorConfig
    from .forward import ForwardLimits, serve_stream
    from .status import ConnectorState, Phase, StatusServer
    from .tokens import CommandToken, FileToken, StaticToken, TokenError, TokenSource
    from .upstream import PoolLimits, UpstreamPool, UpstreamTarget

# Loaded on first use, so importing one submodule does not load the whole package.
_EXPORTS = {
    "Backoff": ".backoff",
    "BackoffPolicy": ".backoff",
    "CommandToken": ".tokens",
    "Connector": ".connector",
    "ConnectorConfig": ".connector",
    "ConnectorState": ".status",
    "FileToken": ".tokens",
    "ForwardLimits": ".forward",
    "Phase": ".status",
    "PoolLimits": ".upstream",
    "StaticToken": ".tokens",
    "StatusServer": ".status",
    "TokenError": ".tokens",
    "TokenSource": ".tokens",
    "UpstreamPool": ".upstream",
    "UpstreamTarget": ".upstream",
    "serve_stream": ".forward",
}

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "CommandToken",
    "Connector",
    "ConnectorConfig",
    "ConnectorState",
    "FileToken",
    "ForwardLimits",
    "Phase",
    "PoolLimits",
    "StaticToken",
    "StatusServer",
    "TokenError",
    "TokenSource",
    "UpstreamPool",
    "UpstreamTarget",
    "serve_stream",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

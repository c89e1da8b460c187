"""The host connector: dials out to the relay and serves each relayed request from the
local agent server (see ``connector.py`` for the loop, ``forward.py`` for one request)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

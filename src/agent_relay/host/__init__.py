"""The host connector: dials out to the relay and serves each relayed request from the
local agent server (see ``connector.py`` for the loop, ``forward.py`` for one request)."""

from ..tokens import CommandToken, FileToken, StaticToken, TokenError, TokenSource
from .backoff import Backoff, BackoffPolicy
from .connector import Connector, ConnectorConfig
from .forward import ForwardLimits, serve_stream
from .status import ConnectorState, Phase, StatusServer
from .upstream import PoolLimits, UpstreamPool, UpstreamTarget

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

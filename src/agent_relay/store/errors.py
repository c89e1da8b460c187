"""Errors raised by the store. The HTTP layer maps each to one status in one place."""

from __future__ import annotations

from ..errors import AgentRelayError


class StoreError(AgentRelayError):
    """Base class of store errors."""


class StoreUnavailable(StoreError):
    """The database does not answer (refused, timed out, gone, locked too long): 503."""


class SchemaMismatch(StoreError):
    """The database's tables are not what this mode needs; the relay must not start."""


class InvalidInput(StoreError, ValueError):
    """An argument is of the wrong type, empty, too long or holds control characters."""


class InvalidDatabaseUrl(InvalidInput):
    """The database URL cannot be used (unknown scheme, bad parameter)."""


class NotFound(StoreError):
    """The user, host or session named does not exist."""


class AlreadyExists(StoreError):
    """A user (or organization member) with that key exists already."""


class AccessDenied(StoreError):
    """The user neither owns the host nor belongs to the organization it is shared with."""


class SharedModeRefused(StoreError):
    """The operation writes tables the remote API owns; shared mode never does that."""

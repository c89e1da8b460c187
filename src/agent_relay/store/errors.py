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


# Not StoreErrors (those become HTTP 400): raised by pool.py, the one place that maps the
# drivers' errors, and turned into the errors above by the store where they are expected.


class DatabaseError(Exception):
    """Any other error of the driver (sqlite3 or asyncpg), which ``orig`` holds. If one
    escapes the store, it is a bug: the HTTP layer answers 500."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(f"{type(orig).__name__}: {str(orig).strip()}")
        self.orig = orig


class ConstraintViolation(DatabaseError):
    """A unique, foreign key, not-null or check constraint refused a write."""

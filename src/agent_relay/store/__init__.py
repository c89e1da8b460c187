"""The relay's database: tables of the reference schema over SQLite or PostgreSQL.

``Store`` is the whole API; see ``store.py``. Stand-alone mode owns and migrates the
database; shared mode uses the remote API's database without changing its schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .errors import (
        AccessDenied,
        AlreadyExists,
        InvalidDatabaseUrl,
        InvalidInput,
        NotFound,
        SchemaMismatch,
        SharedModeRefused,
        StoreError,
        StoreUnavailable,
    )
    from .migrations import SCHEMA_VERSION
    from .records import AuthSessionRecord, HostRecord, HostStatus, ProxyContext, UserRecord
    from .store import Store, StoreMode, utc_now
    from .url import DatabaseTarget, default_sqlite_path, parse_database_url

# Loaded on first use, so importing one submodule does not load the whole package.
_EXPORTS = {
    "AccessDenied": ".errors",
    "AlreadyExists": ".errors",
    "AuthSessionRecord": ".records",
    "DatabaseTarget": ".url",
    "HostRecord": ".records",
    "HostStatus": ".records",
    "InvalidDatabaseUrl": ".errors",
    "InvalidInput": ".errors",
    "NotFound": ".errors",
    "ProxyContext": ".records",
    "SCHEMA_VERSION": ".migrations",
    "SchemaMismatch": ".errors",
    "SharedModeRefused": ".errors",
    "Store": ".store",
    "StoreError": ".errors",
    "StoreMode": ".store",
    "StoreUnavailable": ".errors",
    "UserRecord": ".records",
    "default_sqlite_path": ".url",
    "parse_database_url": ".url",
    "utc_now": ".store",
}

__all__ = [
    "SCHEMA_VERSION",
    "AccessDenied",
    "AlreadyExists",
    "AuthSessionRecord",
    "DatabaseTarget",
    "HostRecord",
    "HostStatus",
    "InvalidDatabaseUrl",
    "InvalidInput",
    "NotFound",
    "ProxyContext",
    "SchemaMismatch",
    "SharedModeRefused",
    "Store",
    "StoreError",
    "StoreMode",
    "StoreUnavailable",
    "UserRecord",
    "default_sqlite_path",
    "parse_database_url",
    "utc_now",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

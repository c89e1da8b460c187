"""The relay's database: tables of the reference schema over SQLite or PostgreSQL.

``Store`` is the whole API; see ``store.py``. Stand-alone mode owns and migrates the
database; shared mode uses the remote API's database without changing its schema.
"""

from .engine import DatabaseTarget, default_sqlite_path, parse_database_url
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

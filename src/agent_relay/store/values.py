"""Values to and from each backend, stored exactly as the SQLAlchemy store stored them.

Databases made by earlier versions keep working, so the representations are fixed
(tests/integration/store_compat holds a file made by that code):

- UUID: PostgreSQL ``uuid``; SQLite ``CHAR(32)``, 32 lowercase hex digits, no dashes.
- timestamps: PostgreSQL ``timestamptz``; SQLite text ``YYYY-MM-DD HH:MM:SS.ffffff`` in
  UTC without offset (always six fraction digits, so text order is time order; the
  schema's ``CURRENT_TIMESTAMP`` defaults have none, and are read as well).
- booleans: PostgreSQL ``boolean``; SQLite integers 0/1.
- enums (StrEnum): their value, as text.

Only timezone-aware datetimes go in, and timestamps always come out aware, in UTC.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

Backend = Literal["sqlite", "postgresql"]


class Kind(enum.Enum):
    """What a result column holds, when the driver's value needs converting."""

    UUID = "uuid"
    TIMESTAMP = "timestamp"
    BOOL = "bool"


def encode(value: object, backend: Backend) -> object:
    """A parameter value as the backend's driver takes it."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return value if backend == "postgresql" else int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, UUID):
        return value if backend == "postgresql" else value.hex
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value if backend == "postgresql" else sqlite_timestamp(value)
    raise TypeError(f"cannot store a {type(value).__name__}")


def sqlite_timestamp(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text of a UTC datetime (its offset is dropped). Not
    strftime: its %Y does not pad years before 1000 on every platform."""
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


def decode(value: object, kind: Kind) -> object:
    """A result value of the driver (either backend) as the store returns it."""
    if value is None:
        return None
    if kind is Kind.UUID:
        if isinstance(value, UUID):
            # asyncpg's own UUID subclass: the plain one, so records compare and hash alike
            return value if type(value) is UUID else UUID(bytes=value.bytes)
        return UUID(str(value))
    if kind is Kind.TIMESTAMP:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"not a timestamp: {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    return bool(value)

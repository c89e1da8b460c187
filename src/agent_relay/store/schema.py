"""Tables, with the names and columns of the reference schema (docs/protocol.md section 10).

In shared mode the remote API owns ``users``, ``organizations``, ``auth_sessions`` and
``organization_member_metadata`` and has more columns than these; the relay reads only the
columns declared here and writes only ``hosts`` and ``relay_browser_sessions``. In
stand-alone mode these definitions are the whole schema (``users`` and ``organizations``
then hold just what the admin commands need).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.types import TypeDecorator

from .records import HostStatus


class UtcDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on PostgreSQL; on SQLite, UTC stored without offset.

    Binds only timezone-aware datetimes and always returns them in UTC, so the two
    backends give equal values and naive datetimes never leak in or out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        # SQLite has no time zones; SQLAlchemy would silently drop the offset anyway.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _created_at() -> Column[datetime]:
    return Column("created_at", UtcDateTime, nullable=False, server_default=func.now())


def _updated_at() -> Column[datetime]:
    return Column("updated_at", UtcDateTime, nullable=False, server_default=func.now())


organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    _created_at(),
    _updated_at(),
)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    # Nullable in the reference; stand-alone mode names its users by it.
    Column("username", Text, nullable=False),
    _created_at(),
    _updated_at(),
    UniqueConstraint("username"),
)

organization_member_metadata = Table(
    "organization_member_metadata",
    metadata,
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", Text, nullable=False, server_default="member"),
    Column("joined_at", UtcDateTime, nullable=False, server_default=func.now()),
    Index(None, "user_id"),
)

auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    _created_at(),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Index(None, "user_id"),
    # Stand-alone only (migration 2); in shared mode the remote API owns this table.
    Index(None, "revoked_at"),
)

hosts = Table(
    "hosts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column(
        "shared_with_organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="SET NULL"),
    ),
    Column("machine_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=HostStatus.OFFLINE.value),
    Column("last_seen_at", UtcDateTime),
    Column("agent_version", Text),
    _created_at(),
    _updated_at(),
    CheckConstraint("status IN ('offline', 'online')", name="status"),
    # The upsert of `connect` targets exactly this constraint.
    UniqueConstraint("owner_user_id", "machine_id"),
    Index(None, "shared_with_organization_id"),
)

relay_browser_sessions = Table(
    "relay_browser_sessions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("host_id", Uuid, ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column(
        "auth_session_id",
        Uuid,
        ForeignKey("auth_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    _created_at(),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    # Revoking an auth session revokes its browser sessions.
    Index(None, "auth_session_id"),
    Index(None, "host_id"),
)

# agent-relay's own: the Ed25519 key a host proved on its first proven connect
# (hostproof.py). Not part of the reference schema; in shared mode the relay uses it when
# it exists (``agent-relay server --shared --create-own-tables`` makes it).
host_keys = Table(
    "agent_relay_host_keys",
    metadata,
    # No foreign key: in shared mode that would need REFERENCES on the remote API's
    # table. A pin outliving its host is harmless (host ids are random and never reused).
    Column("host_id", Uuid, primary_key=True),
    Column("public_key", Text, nullable=False),
    Column("pinned_at", UtcDateTime, nullable=False, server_default=func.now()),
)

# Tables agent-relay adds beside the reference schema (created by the relay itself).
AGENT_RELAY_TABLES = (host_keys,)

# The tables the relay writes in shared mode; the others it only reads there.
RELAY_OWNED_TABLES = (hosts, relay_browser_sessions)
REMOTE_OWNED_TABLES = (users, auth_sessions, organization_member_metadata)

"""Stand-alone mode: versioned, idempotent migrations. Shared mode: a read-only check.

Stand-alone: a fresh database gets the current schema in one go and is stamped with
SCHEMA_VERSION; an older one runs the UPGRADES it lacks, in order. Everything happens in
one transaction under a lock (an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite),
so relays starting together migrate once and a failed step leaves nothing behind.

Shared: the remote API owns the schema. We only look at the catalog (no DDL, ever) and
refuse to start, naming what is missing, if a table, column, the hosts unique key or a
privilege the relay needs is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    inspect,
    select,
    text,
)

from . import schema
from .errors import SchemaMismatch

SCHEMA_VERSION = 3

# UPGRADES[i] takes a database from version i + 1 to i + 2. A step must be written against
# the tables as they were then (plain DDL), never against `schema.metadata`, which always
# describes the newest version.


def _index_revoked_logins(conn: Connection) -> None:
    """2: the relay polls ``auth_sessions.revoked_at`` once a second (revocation.py)."""
    conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_auth_sessions_revoked_at ON auth_sessions (revoked_at)")
    )


def _add_host_keys(conn: Connection) -> None:
    """3: host key pins (hostproof.py)."""
    create_own_tables(conn)


def create_own_tables(conn: Connection) -> None:
    """agent-relay's own tables (never the reference schema's), if they are missing: the
    step of migration 3, and what ``--create-own-tables`` runs in shared mode."""
    schema.metadata.create_all(conn, tables=list(schema.AGENT_RELAY_TABLES), checkfirst=True)


def has_own_tables(conn: Connection) -> bool:
    tables = set(inspect(conn).get_table_names())
    return all(table.name in tables for table in schema.AGENT_RELAY_TABLES)


UPGRADES: Sequence[Callable[[Connection], None]] = (_index_revoked_logins, _add_host_keys)
assert len(UPGRADES) == SCHEMA_VERSION - 1

_version_metadata = MetaData()
schema_version = Table(
    "agent_relay_schema_version",
    _version_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    CheckConstraint("id = 1", name="ck_agent_relay_schema_version_single_row"),
)

# Any constant works; it only has to be the same for every relay process.
_PG_MIGRATION_LOCK = 0x61676E74_72656C61 & 0x7FFFFFFFFFFFFFFF


def migrate(conn: Connection) -> int:
    """Brings a stand-alone database to SCHEMA_VERSION; returns the version found before
    (0 for a fresh database). Runs inside the caller's transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    existing = set(inspect(conn).get_table_names())
    if schema_version.name not in existing:
        ours = sorted(existing & set(schema.metadata.tables))
        if ours:
            raise SchemaMismatch(
                f"the database already has tables {', '.join(ours)} that agent-relay did not "
                "create (no agent_relay_schema_version table). If the remote API owns this "
                "database, run the relay in shared mode; otherwise use an empty database."
            )
        schema_version.create(conn)
        schema.metadata.create_all(conn)
        conn.execute(schema_version.insert().values(id=1, version=SCHEMA_VERSION))
        return 0
    found = conn.execute(select(schema_version.c.version)).scalar_one_or_none()
    if found is None:
        raise SchemaMismatch("agent_relay_schema_version is empty; the database is damaged")
    if found > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database schema is version {found}, newer than this agent-relay "
            f"(which knows up to {SCHEMA_VERSION}); upgrade agent-relay"
        )
    for step in UPGRADES[found - 1 :]:
        step(conn)
    if found != SCHEMA_VERSION:
        conn.execute(schema_version.update().values(version=SCHEMA_VERSION))
    return int(found)


# What shared mode reads or writes, per table. Remote-owned tables have more columns.
SHARED_MODE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "users": ("id",),
    "auth_sessions": ("id", "user_id", "created_at", "last_used_at", "revoked_at"),
    "organization_member_metadata": ("organization_id", "user_id"),
    "hosts": tuple(schema.hosts.c.keys()),
    "relay_browser_sessions": tuple(schema.relay_browser_sessions.c.keys()),
}
SHARED_MODE_PRIVILEGES: Mapping[str, tuple[str, ...]] = {
    "users": ("SELECT",),
    "auth_sessions": ("SELECT",),
    "organization_member_metadata": ("SELECT",),
    "hosts": ("SELECT", "INSERT", "UPDATE"),
    "relay_browser_sessions": ("SELECT", "INSERT", "UPDATE"),
}


def check_shared_schema(conn: Connection) -> None:
    """Raises SchemaMismatch listing every problem; reads the catalog only."""
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    problems: list[str] = []
    for table, needed in SHARED_MODE_COLUMNS.items():
        if table not in tables:
            problems.append(f"table {table} is missing")
            continue
        present = {column["name"] for column in inspector.get_columns(table)}
        missing = [name for name in needed if name not in present]
        if missing:
            problems.append(f"{table} lacks column(s) {', '.join(missing)}")
    if "hosts" in tables and not _has_unique_key(conn, "hosts", {"owner_user_id", "machine_id"}):
        problems.append("hosts has no unique key on (owner_user_id, machine_id)")
    if conn.dialect.name == "postgresql" and not problems:
        for table, privileges in SHARED_MODE_PRIVILEGES.items():
            for privilege in privileges:
                allowed = conn.execute(
                    text("SELECT has_table_privilege(current_user, :table, :privilege)"),
                    {"table": table, "privilege": privilege},
                ).scalar_one()
                if not allowed:
                    problems.append(f"the database user may not {privilege} {table}")
    if problems:
        raise SchemaMismatch(
            "shared mode: the database lacks what the relay needs (the remote API owns the "
            "schema; the relay never changes it): " + "; ".join(problems)
        )


def _has_unique_key(conn: Connection, table: str, columns: set[str]) -> bool:
    inspector = inspect(conn)
    keys = [set(c["column_names"]) for c in inspector.get_unique_constraints(table)]
    keys += [
        {name for name in index["column_names"] if name is not None}
        for index in inspector.get_indexes(table)
        if index["unique"] and not index.get("dialect_options", {}).get("postgresql_where")
    ]
    return columns in keys

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

from collections.abc import Awaitable, Callable, Mapping, Sequence

from . import catalog, ddl, schema
from .errors import SchemaMismatch
from .pool import Connection

SCHEMA_VERSION = 3

# UPGRADES[i] takes a database from version i + 1 to i + 2. A step must be written against
# the tables as they were then (plain DDL), never against ddl.py's statements, which
# always describe the newest version.


async def _index_revoked_logins(conn: Connection) -> None:
    """2: the relay polls ``auth_sessions.revoked_at`` once a second (revocation.py)."""
    await conn.execute(
        "CREATE INDEX IF NOT EXISTS ix_auth_sessions_revoked_at ON auth_sessions (revoked_at)"
    )


async def _add_host_keys(conn: Connection) -> None:
    """3: host key pins (hostproof.py)."""
    await create_own_tables(conn)


async def create_own_tables(conn: Connection) -> None:
    """agent-relay's own tables (never the reference schema's), if they are missing: the
    step of migration 3, and what ``--create-own-tables`` runs in shared mode."""
    existing = await catalog.table_names(conn)
    missing = tuple(name for name in ddl.OWN_TABLES if name not in existing)
    for statement in ddl.create_statements(conn.backend, missing):
        await conn.execute(statement)


async def has_own_tables(conn: Connection) -> bool:
    tables = await catalog.table_names(conn)
    return all(name in tables for name in ddl.OWN_TABLES)


UPGRADES: Sequence[Callable[[Connection], Awaitable[None]]] = (
    _index_revoked_logins,
    _add_host_keys,
)
assert len(UPGRADES) == SCHEMA_VERSION - 1

# Any constant works; it only has to be the same for every relay process.
_PG_MIGRATION_LOCK = 0x61676E74_72656C61 & 0x7FFFFFFFFFFFFFFF


async def migrate(conn: Connection) -> int:
    """Brings a stand-alone database to SCHEMA_VERSION; returns the version found before
    (0 for a fresh database). Runs inside the caller's transaction."""
    if conn.backend == "postgresql":
        await conn.execute("SELECT pg_advisory_xact_lock(:key)", {"key": _PG_MIGRATION_LOCK})
    existing = await catalog.table_names(conn)
    if ddl.SCHEMA_VERSION_TABLE not in existing:
        ours = sorted(existing & set(ddl.TABLE_NAMES))
        if ours:
            raise SchemaMismatch(
                f"the database already has tables {', '.join(ours)} that agent-relay did not "
                "create (no agent_relay_schema_version table). If the remote API owns this "
                "database, run the relay in shared mode; otherwise use an empty database."
            )
        await conn.execute(ddl.schema_version_table(conn.backend))
        for statement in ddl.create_statements(conn.backend):
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO agent_relay_schema_version (id, version) VALUES (1, :version)",
            {"version": SCHEMA_VERSION},
        )
        return 0
    found = await conn.fetchval("SELECT version FROM agent_relay_schema_version")
    if found is None:
        raise SchemaMismatch("agent_relay_schema_version is empty; the database is damaged")
    if found > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the database schema is version {found}, newer than this agent-relay "
            f"(which knows up to {SCHEMA_VERSION}); upgrade agent-relay"
        )
    for step in UPGRADES[found - 1 :]:
        await step(conn)
    if found != SCHEMA_VERSION:
        await conn.execute(
            "UPDATE agent_relay_schema_version SET version = :version",
            {"version": SCHEMA_VERSION},
        )
    return int(found)


# What shared mode reads or writes, per table. Remote-owned tables have more columns.
SHARED_MODE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "users": ("id",),
    "auth_sessions": ("id", "user_id", "created_at", "last_used_at", "revoked_at"),
    "organization_member_metadata": ("organization_id", "user_id"),
    "hosts": schema.HOST_COLUMNS,
    "relay_browser_sessions": schema.BROWSER_SESSION_COLUMNS,
}
SHARED_MODE_PRIVILEGES: Mapping[str, tuple[str, ...]] = {
    "users": ("SELECT",),
    "auth_sessions": ("SELECT",),
    "organization_member_metadata": ("SELECT",),
    "hosts": ("SELECT", "INSERT", "UPDATE"),
    "relay_browser_sessions": ("SELECT", "INSERT", "UPDATE"),
}


async def check_shared_schema(conn: Connection) -> None:
    """Raises SchemaMismatch listing every problem; reads the catalog only."""
    tables = await catalog.table_names(conn)
    problems: list[str] = []
    for table, needed in SHARED_MODE_COLUMNS.items():
        if table not in tables:
            problems.append(f"table {table} is missing")
            continue
        present = await catalog.column_names(conn, table)
        missing = [name for name in needed if name not in present]
        if missing:
            problems.append(f"{table} lacks column(s) {', '.join(missing)}")
    if "hosts" in tables and {"owner_user_id", "machine_id"} not in await catalog.unique_keys(
        conn, "hosts"
    ):
        problems.append("hosts has no unique key on (owner_user_id, machine_id)")
    if conn.backend == "postgresql" and not problems:
        for table, privileges in SHARED_MODE_PRIVILEGES.items():
            for privilege in privileges:
                allowed = await conn.fetchval(
                    "SELECT has_table_privilege(current_user, :table::text, :privilege::text)",
                    {"table": table, "privilege": privilege},
                )
                if not allowed:
                    problems.append(f"the database user may not {privilege} {table}")
    if problems:
        raise SchemaMismatch(
            "shared mode: the database lacks what the relay needs (the remote API owns the "
            "schema; the relay never changes it): " + "; ".join(problems)
        )

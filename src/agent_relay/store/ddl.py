"""The schema's DDL, written out for each backend.

The statements are those SQLAlchemy's ``metadata.create_all`` emitted for schema.py
before the store dropped it (tests/integration/store_compat/ddl_*.sql holds that output;
test_store_compat checks that a fresh database gets the same catalog). The backends
differ only in three spellings: ``uuid`` / ``CHAR(32)``, ``TIMESTAMP WITH TIME ZONE`` /
``DATETIME`` and ``now()`` / ``CURRENT_TIMESTAMP``.
"""

from __future__ import annotations

from collections.abc import Mapping

from .values import Backend

_TYPES: Mapping[Backend, Mapping[str, str]] = {
    "postgresql": {"uuid": "UUID", "timestamp": "TIMESTAMP WITH TIME ZONE", "now": "now()"},
    "sqlite": {"uuid": "CHAR(32)", "timestamp": "DATETIME", "now": "CURRENT_TIMESTAMP"},
}

SCHEMA_VERSION_TABLE = "agent_relay_schema_version"

_SCHEMA_VERSION = """
CREATE TABLE agent_relay_schema_version (
    id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT ck_agent_relay_schema_version_single_row CHECK (id = 1)
)
"""

_HOST_KEYS = """
CREATE TABLE agent_relay_host_keys (
    host_id {uuid} NOT NULL,
    public_key TEXT NOT NULL,
    pinned_at {timestamp} DEFAULT {now} NOT NULL,
    CONSTRAINT pk_agent_relay_host_keys PRIMARY KEY (host_id)
)
"""

# (table, its CREATE TABLE, its CREATE INDEXes), in the order of the foreign keys.
_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("agent_relay_host_keys", _HOST_KEYS, ()),
    (
        "organizations",
        """
CREATE TABLE organizations (
    id {uuid} NOT NULL,
    name TEXT NOT NULL,
    created_at {timestamp} DEFAULT {now} NOT NULL,
    updated_at {timestamp} DEFAULT {now} NOT NULL,
    CONSTRAINT pk_organizations PRIMARY KEY (id)
)
""",
        (),
    ),
    (
        "users",
        """
CREATE TABLE users (
    id {uuid} NOT NULL,
    username TEXT NOT NULL,
    created_at {timestamp} DEFAULT {now} NOT NULL,
    updated_at {timestamp} DEFAULT {now} NOT NULL,
    CONSTRAINT pk_users PRIMARY KEY (id),
    CONSTRAINT uq_users_username UNIQUE (username)
)
""",
        (),
    ),
    (
        "auth_sessions",
        """
CREATE TABLE auth_sessions (
    id {uuid} NOT NULL,
    user_id {uuid} NOT NULL,
    created_at {timestamp} DEFAULT {now} NOT NULL,
    last_used_at {timestamp},
    revoked_at {timestamp},
    CONSTRAINT pk_auth_sessions PRIMARY KEY (id),
    CONSTRAINT fk_auth_sessions_user_id_users FOREIGN KEY(user_id)
        REFERENCES users (id) ON DELETE CASCADE
)
""",
        (
            "CREATE INDEX ix_auth_sessions_revoked_at ON auth_sessions (revoked_at)",
            "CREATE INDEX ix_auth_sessions_user_id ON auth_sessions (user_id)",
        ),
    ),
    (
        "hosts",
        """
CREATE TABLE hosts (
    id {uuid} NOT NULL,
    owner_user_id {uuid} NOT NULL,
    shared_with_organization_id {uuid},
    machine_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT DEFAULT 'offline' NOT NULL,
    last_seen_at {timestamp},
    agent_version TEXT,
    created_at {timestamp} DEFAULT {now} NOT NULL,
    updated_at {timestamp} DEFAULT {now} NOT NULL,
    CONSTRAINT pk_hosts PRIMARY KEY (id),
    CONSTRAINT ck_hosts_status CHECK (status IN ('offline', 'online')),
    CONSTRAINT uq_hosts_owner_user_id_machine_id UNIQUE (owner_user_id, machine_id),
    CONSTRAINT fk_hosts_owner_user_id_users FOREIGN KEY(owner_user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_hosts_shared_with_organization_id_organizations
        FOREIGN KEY(shared_with_organization_id) REFERENCES organizations (id)
        ON DELETE SET NULL
)
""",
        (
            "CREATE INDEX ix_hosts_shared_with_organization_id "
            "ON hosts (shared_with_organization_id)",
        ),
    ),
    (
        "organization_member_metadata",
        """
CREATE TABLE organization_member_metadata (
    organization_id {uuid} NOT NULL,
    user_id {uuid} NOT NULL,
    role TEXT DEFAULT 'member' NOT NULL,
    joined_at {timestamp} DEFAULT {now} NOT NULL,
    CONSTRAINT pk_organization_member_metadata PRIMARY KEY (organization_id, user_id),
    CONSTRAINT fk_organization_member_metadata_organization_id_organizations
        FOREIGN KEY(organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT fk_organization_member_metadata_user_id_users FOREIGN KEY(user_id)
        REFERENCES users (id) ON DELETE CASCADE
)
""",
        (
            "CREATE INDEX ix_organization_member_metadata_user_id "
            "ON organization_member_metadata (user_id)",
        ),
    ),
    (
        "relay_browser_sessions",
        """
CREATE TABLE relay_browser_sessions (
    id {uuid} NOT NULL,
    host_id {uuid} NOT NULL,
    user_id {uuid} NOT NULL,
    auth_session_id {uuid} NOT NULL,
    created_at {timestamp} DEFAULT {now} NOT NULL,
    last_used_at {timestamp},
    revoked_at {timestamp},
    CONSTRAINT pk_relay_browser_sessions PRIMARY KEY (id),
    CONSTRAINT fk_relay_browser_sessions_host_id_hosts FOREIGN KEY(host_id)
        REFERENCES hosts (id) ON DELETE CASCADE,
    CONSTRAINT fk_relay_browser_sessions_user_id_users FOREIGN KEY(user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_relay_browser_sessions_auth_session_id_auth_sessions
        FOREIGN KEY(auth_session_id) REFERENCES auth_sessions (id) ON DELETE CASCADE
)
""",
        (
            "CREATE INDEX ix_relay_browser_sessions_auth_session_id "
            "ON relay_browser_sessions (auth_session_id)",
            "CREATE INDEX ix_relay_browser_sessions_host_id ON relay_browser_sessions (host_id)",
        ),
    ),
)

TABLE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _TABLES)

# agent-relay's own tables beside the reference schema (created by the relay itself).
OWN_TABLES: tuple[str, ...] = ("agent_relay_host_keys",)


def _spelled(statement: str, backend: Backend) -> str:
    return statement.strip().format_map(_TYPES[backend])


def schema_version_table(backend: Backend) -> str:
    return _spelled(_SCHEMA_VERSION, backend)


def create_statements(backend: Backend, tables: tuple[str, ...] = TABLE_NAMES) -> list[str]:
    """CREATE TABLE and CREATE INDEX of the given tables, in dependency order."""
    statements: list[str] = []
    for name, table, indexes in _TABLES:
        if name in tables:
            statements.append(_spelled(table, backend))
            statements += indexes
    return statements

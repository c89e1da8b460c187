"""The reference remote API's schema on a throwaway PostgreSQL database, for shared mode."""

# ruff: noqa: S608 - SQL built from test constants
from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

from agent_relay.relay.auth import JwtSecret

from .pgcluster import PostgresCluster

SECRET = JwtSecret(b"s" * 48)


# As the remote API's migrations would leave it; written from the spec, not copied.
REFERENCE_DDL = """
CREATE TYPE member_role AS ENUM ('admin', 'member');

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    slug        text NOT NULL UNIQUE,
    is_personal boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email      text NOT NULL UNIQUE,
    first_name text,
    last_name  text,
    username   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organization_member_metadata (
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role            member_role NOT NULL DEFAULT 'member',
    joined_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz,
    PRIMARY KEY (organization_id, user_id)
);

CREATE TABLE auth_sessions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_secret_hash text,
    user_agent          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    revoked_at          timestamptz
);

CREATE TABLE hosts (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_user_id               uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    shared_with_organization_id uuid REFERENCES organizations(id) ON DELETE SET NULL,
    machine_id                  text NOT NULL,
    name                        text NOT NULL,
    status                      text NOT NULL DEFAULT 'offline'
                                CHECK (status IN ('offline', 'online')),
    last_seen_at                timestamptz,
    agent_version               text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_user_id, machine_id)
);

CREATE TABLE relay_browser_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    host_id         uuid NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_session_id uuid NOT NULL REFERENCES auth_sessions(id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);

CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at = now(); RETURN NEW; END $$;
CREATE TRIGGER hosts_updated_at BEFORE UPDATE ON hosts
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
"""


@dataclass
class ReferenceDatabase:
    cluster: PostgresCluster
    name: str
    role: str

    @property
    def relay_url(self) -> str:
        """As the restricted relay role."""
        return self.cluster.url(self.name, user=self.role)

    def sql(self, statement: str) -> str:
        """As the superuser (the remote API's side)."""
        return self.cluster.psql(statement, database=self.name)

    def catalog(self) -> str:
        return self.sql(CATALOG_SNAPSHOT)

    def add_user(self, email: str) -> UUID:
        user_id = uuid.uuid4()
        self.sql(
            "INSERT INTO users (id, email, first_name, username) "
            f"VALUES ('{user_id}', '{email}', 'First', NULL)"
        )
        return user_id

    def add_auth_session(self, user_id: UUID, **columns: str) -> UUID:
        session_id = uuid.uuid4()
        names = ", ".join(["id", "user_id", "session_secret_hash", *columns])
        values = ", ".join([f"'{session_id}'", f"'{user_id}'", "'argon2$…'"])
        values += "".join(f", {value}" for value in columns.values())
        self.sql(f"INSERT INTO auth_sessions ({names}) VALUES ({values})")
        return session_id


# Everything DDL could change, as sorted text lines.
CATALOG_SNAPSHOT = """
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT 'namespace ' || nspname FROM pg_namespace
  UNION ALL
  SELECT 'relation ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
         || ' ' || coalesce(c.relacl::text, '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  UNION ALL
  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
  WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
  SELECT 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
) AS catalog(line)
"""

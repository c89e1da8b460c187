"""Shared mode: the relay on a database the remote API owns (PostgreSQL only).

The tables are made here with the reference DDL (wire.md section 10) plus columns the
remote API has and the relay must not care about. The relay connects as a role that may
read users/auth_sessions/memberships and read+write hosts/relay_browser_sessions, and that
cannot create anything; the catalog is also compared before and after.
"""

# The remote API's rows are written with literal SQL built from uuid4() values.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from agent_relay.relay.auth import Authenticator, AuthError, AuthFailure, JwtSecret, mint_token
from agent_relay.store import (
    HostStatus,
    SchemaMismatch,
    SharedModeRefused,
    Store,
    StoreMode,
)

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


@pytest.fixture
def reference_database(postgres_cluster: PostgresCluster) -> Iterator[ReferenceDatabase]:
    name = postgres_cluster.create_database()
    role = f"relay_{uuid.uuid4().hex[:12]}"
    db = ReferenceDatabase(postgres_cluster, name, role)
    try:
        db.sql(REFERENCE_DDL)
        db.sql(
            f"CREATE ROLE {role} LOGIN;"
            f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC;'
            f'GRANT CONNECT ON DATABASE "{name}" TO {role};'
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
            f"GRANT USAGE ON SCHEMA public TO {role};"
            f"GRANT SELECT ON users, auth_sessions, organization_member_metadata TO {role};"
            f"GRANT SELECT, INSERT, UPDATE ON hosts, relay_browser_sessions TO {role};"
        )
        yield db
    finally:
        postgres_cluster.drop_database(name)
        postgres_cluster.psql(f"DROP ROLE IF EXISTS {role}")


async def test_relay_role_cannot_create_anything(reference_database: ReferenceDatabase) -> None:
    """The guard itself: had the store tried DDL, it would have failed."""
    import asyncpg

    conn = await asyncpg.connect(reference_database.relay_url)
    try:
        for ddl in ("CREATE TABLE x (id int)", "CREATE TEMP TABLE y (id int)"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(ddl)
    finally:
        await conn.close()


async def test_shared_mode_on_the_reference_schema(reference_database: ReferenceDatabase) -> None:
    db = reference_database
    alice, bob, carol = (db.add_user(f"{name}@example.com") for name in ("alice", "bob", "carol"))
    org = uuid.uuid4()
    db.sql(f"INSERT INTO organizations (id, name, slug) VALUES ('{org}', 'Acme', 'acme')")
    db.sql(f"INSERT INTO organization_member_metadata VALUES ('{org}', '{bob}', 'member')")
    alice_session = db.add_auth_session(alice, last_used_at="now() - interval '1 day'")
    bob_session = db.add_auth_session(bob)
    before = db.catalog()

    store = await Store.open(db.relay_url, mode=StoreMode.SHARED)
    try:
        assert store.mode is StoreMode.SHARED
        assert await store.health()
        assert await store.mark_all_hosts_offline() == 0
        auth = Authenticator(SECRET, store)
        token = mint_token(SECRET, alice, alice_session, timedelta(minutes=5))
        identity = await auth.authenticate(f"Bearer {token}")
        assert (identity.user_id, identity.auth_session_id) == (alice, alice_session)

        host = await store.upsert_host(alice, "machine-1", "alice laptop", "0.1.0")
        assert await store.upsert_host(alice, "machine-1", "renamed") == host
        assert await store.set_host_status(host, HostStatus.ONLINE)
        assert await store.touch_hosts([host]) == 1
        # The remote API shares the host with the organization.
        db.sql(f"UPDATE hosts SET shared_with_organization_id = '{org}' WHERE id = '{host}'")
        assert [h.id for h in await store.list_hosts_for_user(bob)] == [host]
        assert await store.can_access_host(bob, host)
        assert not await store.can_access_host(carol, host)

        session = await store.create_browser_session(host, bob, bob_session)
        context = await store.load_proxy_context(session)
        assert context is not None
        assert context.user_has_access
        assert context.auth_session is not None
        assert context.auth_session.user_id == bob
        assert await store.touch_browser_session(session)

        # The remote API revokes bob's login; the relay sees it on the next request.
        db.sql(f"UPDATE auth_sessions SET revoked_at = now() WHERE id = '{bob_session}'")
        context = await store.load_proxy_context(session)
        assert context is not None
        assert context.auth_session is not None
        assert context.auth_session.revoked_at is not None
        assert await store.revoke_browser_session(session)

        # The relay never writes auth_sessions here.
        last_used = db.sql(f"SELECT last_used_at FROM auth_sessions WHERE id = '{alice_session}'")
        assert not await store.touch_auth_session(alice_session)
        assert db.sql(f"SELECT last_used_at FROM auth_sessions WHERE id = '{alice_session}'") == (
            last_used
        )
        assert await store.mark_all_hosts_offline() == 1
    finally:
        await store.close()
    assert db.catalog() == before
    assert "agent_relay_schema_version" not in before


async def test_auth_checks_on_remote_rows(reference_database: ReferenceDatabase) -> None:
    db = reference_database
    alice, bob = db.add_user("alice@example.com"), db.add_user("bob@example.com")
    idle = db.add_auth_session(
        alice,
        created_at="now() - interval '800 days'",
        last_used_at="now() - interval '366 days'",
    )
    old_but_used = db.add_auth_session(
        alice, created_at="now() - interval '800 days'", last_used_at="now() - interval '364 days'"
    )
    revoked = db.add_auth_session(alice, revoked_at="now()")
    bobs = db.add_auth_session(bob)
    async with await Store.open(db.relay_url, mode="shared") as store:
        auth = Authenticator(SECRET, store)
        cases = {
            idle: AuthFailure.SESSION_IDLE,
            revoked: AuthFailure.SESSION_REVOKED,
            bobs: AuthFailure.SESSION_USER_MISMATCH,  # a token for alice naming bob's session
            uuid.uuid4(): AuthFailure.UNKNOWN_SESSION,
        }
        for session, reason in cases.items():
            with pytest.raises(AuthError) as caught:
                await auth.verify(mint_token(SECRET, alice, session, timedelta(minutes=1)))
            assert caught.value.failure is reason
        identity = await auth.verify(mint_token(SECRET, alice, old_but_used, timedelta(minutes=1)))
        assert identity.auth_session_id == old_but_used


@pytest.mark.parametrize(
    "call",
    [
        ("add_user", ("alice",)),
        ("get_user", ("alice",)),
        ("list_users", ()),
        ("issue_auth_session", (uuid.uuid4(),)),
        ("revoke_auth_session", (uuid.uuid4(),)),
        ("revoke_user_auth_sessions", (uuid.uuid4(),)),
        ("add_organization", ("Acme",)),
        ("add_organization_member", (uuid.uuid4(), uuid.uuid4())),
        ("remove_organization_member", (uuid.uuid4(), uuid.uuid4())),
        ("share_host", (uuid.uuid4(), None)),
    ],
)
async def test_shared_mode_refuses_administration(
    reference_database: ReferenceDatabase, call: tuple[str, tuple[Any, ...]]
) -> None:
    async with await Store.open(reference_database.relay_url, mode="shared") as store:
        method, args = call
        with pytest.raises(SharedModeRefused):
            await getattr(store, method)(*args)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("DROP TABLE relay_browser_sessions", "table relay_browser_sessions is missing"),
        ("ALTER TABLE hosts DROP COLUMN agent_version", "hosts lacks column(s) agent_version"),
        (
            "ALTER TABLE auth_sessions DROP COLUMN last_used_at, DROP COLUMN revoked_at",
            "auth_sessions lacks column(s) last_used_at, revoked_at",
        ),
        (
            "ALTER TABLE hosts DROP CONSTRAINT hosts_owner_user_id_machine_id_key",
            "no unique key on (owner_user_id, machine_id)",
        ),
        ("REVOKE INSERT ON hosts FROM {role}", "may not INSERT hosts"),
        ("REVOKE SELECT ON organization_member_metadata FROM {role}", "may not SELECT"),
    ],
)
async def test_shared_mode_refuses_a_schema_it_cannot_use(
    reference_database: ReferenceDatabase, damage: str, message: str
) -> None:
    reference_database.sql(damage.format(role=reference_database.role))
    before = reference_database.catalog()
    with pytest.raises(SchemaMismatch) as caught:
        await Store.open(reference_database.relay_url, mode=StoreMode.SHARED)
    assert message in str(caught.value)
    assert "never changes it" in str(caught.value)
    assert reference_database.catalog() == before


async def test_standalone_mode_refuses_the_remote_database(
    reference_database: ReferenceDatabase,
) -> None:
    """Pointing a stand-alone relay at the remote API's database must not "adopt" it,
    even with a role that could create tables."""
    before = reference_database.catalog()
    superuser_url = reference_database.cluster.url(reference_database.name)
    with pytest.raises(SchemaMismatch, match="shared mode"):
        await Store.open(superuser_url, mode=StoreMode.STANDALONE)
    assert reference_database.catalog() == before


async def test_remote_timestamps_read_as_utc(reference_database: ReferenceDatabase) -> None:
    db = reference_database
    db.sql(f"ALTER DATABASE \"{db.name}\" SET timezone = 'America/Los_Angeles'")
    alice = db.add_user("alice@example.com")
    session = db.add_auth_session(alice, created_at="'2030-01-02 03:04:05.678+00'")
    async with await Store.open(db.relay_url, mode="shared") as store:
        record = await store.get_auth_session(session)
    assert record is not None
    assert record.created_at == datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert record.created_at.tzinfo is UTC

"""Shared mode: the relay on a database the remote API owns (PostgreSQL only).

The tables are made here with the reference DDL (docs/protocol.md section 10) plus columns the
remote API has and the relay must not care about. The relay connects as a role that may
read users/auth_sessions/memberships and read+write hosts/relay_browser_sessions, and that
cannot create anything; the catalog is also compared before and after.
"""

# The remote API's rows are written with literal SQL built from uuid4() values.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_relay.relay.auth import Authenticator, AuthError, AuthFailure, mint_token
from agent_relay.store import (
    HostStatus,
    SchemaMismatch,
    SharedModeRefused,
    Store,
    StoreMode,
)
from tests.support.reference_db import SECRET, ReferenceDatabase


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


async def test_host_key_pins_need_own_tables_in_shared_mode(
    reference_database: ReferenceDatabase,
) -> None:
    """Without agent-relay's own table the relay works and pins nothing; with the
    privilege to create it, ``create_own`` adds just that table and pins work."""
    db = reference_database
    alice = db.add_user("alice@example.com")
    store = await Store.open(db.relay_url, mode=StoreMode.SHARED)
    try:
        assert not store.host_keys_enabled
        host = await store.upsert_host(alice, "machine-1", "laptop")
        assert await store.pin_host_key(host, "a" * 44) is None
        assert await store.pinned_host_key(host) is None
        with pytest.raises(SharedModeRefused):
            await store.reset_host_key(host)
    finally:
        await store.close()
    before = db.catalog()
    db.sql(f"GRANT CREATE ON SCHEMA public TO {db.role}")
    store = await Store.open(db.relay_url, mode=StoreMode.SHARED, create_own=True)
    try:
        assert store.host_keys_enabled
        assert await store.pin_host_key(host, "a" * 44) == "a" * 44
        assert await store.pin_host_key(host, "b" * 44) == "a" * 44  # the first one stays
        assert await store.reset_host_key(host)
        assert await store.pinned_host_key(host) is None
    finally:
        await store.close()
    added = set(db.catalog().splitlines()) - set(before.splitlines())
    assert added
    assert all("agent_relay_host_keys" in line for line in added), added
    removed = set(before.splitlines()) - set(db.catalog().splitlines())
    assert not [line for line in removed if "agent_relay_host_keys" not in line], removed


async def test_create_own_tables_without_the_privilege_says_so(
    reference_database: ReferenceDatabase,
) -> None:
    with pytest.raises(SchemaMismatch, match="cannot create agent-relay's own tables"):
        await Store.open(reference_database.relay_url, mode=StoreMode.SHARED, create_own=True)

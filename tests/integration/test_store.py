"""The store in stand-alone mode, every method on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from agent_relay.relay.auth import (
    Authenticator,
    AuthError,
    AuthFailure,
    JwtSecret,
    issue_token,
)
from agent_relay.store import (
    SCHEMA_VERSION,
    AccessDenied,
    AlreadyExists,
    AuthSessionRecord,
    HostStatus,
    InvalidDatabaseUrl,
    InvalidInput,
    NotFound,
    SchemaMismatch,
    Store,
    StoreUnavailable,
    UserRecord,
)
from agent_relay.store.validation import MAX_BATCH, MAX_HOST_NAME_LENGTH

from .conftest import FakeClock
from .pgcluster import PostgresCluster, free_port

SECRET = JwtSecret(b"k" * 32)


async def raw_query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """SQL behind the store's back (to inspect or to damage a database)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    pg = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await pg.fetch(sql)]
    finally:
        await pg.close()


@dataclass
class World:
    """alice owns `host`, shared with `org`; bob is a member of `org`; carol is not."""

    alice: UserRecord
    bob: UserRecord
    carol: UserRecord
    org: UUID
    host: UUID
    alice_session: AuthSessionRecord
    bob_session: AuthSessionRecord
    carol_session: AuthSessionRecord


async def make_world(store: Store) -> World:
    alice, bob, carol = [await store.add_user(name) for name in ("alice", "bob", "carol")]
    org = await store.add_organization("Acme")
    assert await store.add_organization_member(org, bob.id)
    host = await store.upsert_host(alice.id, "machine-1", "alice laptop", "0.1.0")
    assert await store.share_host(host, org)
    return World(
        alice,
        bob,
        carol,
        org,
        host,
        await store.issue_auth_session(alice.id),
        await store.issue_auth_session(bob.id),
        await store.issue_auth_session(carol.id),
    )


# -- opening, migrations, engines ---------------------------------------------------------


async def test_fresh_database_is_migrated_once(database_url: str) -> None:
    async with await Store.open(database_url) as store:
        assert await store.health()
        await store.add_user("alice")
    # Reopening finds the version and changes nothing (the user is still there).
    async with await Store.open(database_url) as store:
        assert [user.username for user in await store.list_users()] == ["alice"]
    rows = await raw_query(database_url, "SELECT id, version FROM agent_relay_schema_version")
    assert rows == [(1, SCHEMA_VERSION)]


async def test_relays_starting_together_migrate_once(database_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(database_url) for _ in range(4)))
    for store in stores:
        await store.close()
    rows = await raw_query(database_url, "SELECT version FROM agent_relay_schema_version")
    assert rows == [(SCHEMA_VERSION,)]


async def test_newer_schema_version_is_refused(database_url: str) -> None:
    await (await Store.open(database_url)).close()
    await raw_query(database_url, "UPDATE agent_relay_schema_version SET version = 99")
    with pytest.raises(SchemaMismatch, match="version 99"):
        await Store.open(database_url)


async def test_standalone_refuses_tables_it_did_not_create(database_url: str) -> None:
    await raw_query(database_url, "CREATE TABLE users (id integer primary key)")
    with pytest.raises(SchemaMismatch, match="shared mode"):
        await Store.open(database_url)


async def test_sqlite_default_file_in_data_dir(tmp_path: Path) -> None:
    async with await Store.open(data_dir=tmp_path / "data") as store:
        assert store.backend == "sqlite"
        assert await store.health()
    database = tmp_path / "data" / "relay.sqlite3"
    assert database.is_file()
    assert (database.parent.stat().st_mode & 0o777) == 0o700
    # WAL is a property of the file: a plain connection sees it.
    assert await raw_query(f"sqlite:///{database}", "PRAGMA journal_mode") == [("wal",)]


async def test_sqlite_waits_for_a_writer_then_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    async with await Store.open(str(path), statement_timeout=5) as store:
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.3, locker.commit)
        started = time.monotonic()
        await store.add_user("patient")  # waits out the lock (busy_timeout)
        assert time.monotonic() - started >= 0.25
        locker.close()
    async with await Store.open(str(path), statement_timeout=0.2) as store:
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.add_user("impatient")
        finally:
            locker.rollback()
            locker.close()


async def test_sqlite_directory_that_cannot_exist_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable):
        await Store.open(str(blocker / "relay.sqlite3"))


async def test_postgres_url_forms(postgres_cluster: PostgresCluster, postgres_url: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    base = f"127.0.0.1:{postgres_cluster.port}/{database}"
    for url in (
        f"postgres://postgres@{base}?sslmode=disable",  # as the reference's docs write it
        f"postgresql://postgres@{base}?sslmode=prefer&application_name=relay",
        f"postgresql+asyncpg://postgres:secret@{base}",
        # A unix socket: libpq's empty authority with ?host=<directory>.
        f"postgresql:///{database}?host={postgres_cluster.socket_dir}"
        f"&port={postgres_cluster.port}&user=postgres",
    ):
        async with await Store.open(url) as store:
            assert store.backend == "postgresql"
            assert "secret" not in store.display_url
            assert await store.health()
    # The test server has no TLS: requiring it must fail, and as "unavailable".
    with pytest.raises(StoreUnavailable):
        await Store.open(f"postgresql://postgres@{base}?sslmode=require", connect_timeout=5)
    with pytest.raises(InvalidDatabaseUrl):
        await Store.open(f"postgresql://postgres@{base}?sslmode=sometimes")


async def test_postgres_nobody_listening_is_unavailable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await Store.open(url, connect_timeout=3)
    assert time.monotonic() - started < 3


async def test_postgres_database_gone_while_running(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    store = await Store.open(postgres_url, connect_timeout=3)
    try:
        user = await store.add_user("alice")
        postgres_cluster.drop_database(postgres_url.rsplit("/", 1)[1])
        for _ in range(2):  # the stale pooled connection, then a reconnect that fails
            with pytest.raises(StoreUnavailable):
                await store.list_hosts_for_user(user.id)
        assert not await store.health()
    finally:
        await store.close()


async def test_postgres_statement_timeout_is_unavailable(postgres_url: str) -> None:
    """A statement stuck behind a lock for longer than statement_timeout is a 503; the
    pool stays usable afterwards."""
    async with await Store.open(postgres_url, statement_timeout=0.5) as store:
        alice = await store.add_user("alice")
        host = await store.upsert_host(alice.id, "m-1", "laptop")
        locker = await asyncpg.connect(postgres_url)
        try:
            lock = locker.transaction()
            await lock.start()
            await locker.execute("SELECT * FROM hosts WHERE id = $1 FOR UPDATE", host)
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.set_host_status(host, HostStatus.ONLINE)
            assert time.monotonic() - started < 3
            await lock.rollback()
        finally:
            await locker.close()
        assert await store.set_host_status(host, HostStatus.ONLINE)
        assert await store.health()


async def test_proxy_context_is_one_statement_without_transaction(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """On PostgreSQL the hot-path query is exactly one statement, with no BEGIN/COMMIT
    around it (read from the server's own statement log)."""
    database = postgres_url.rsplit("/", 1)[1]
    postgres_cluster.psql(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")
    async with await Store.open(postgres_url, pool_size=1) as store:
        world = await make_world(store)
        session = await store.create_browser_session(
            world.host, world.alice.id, world.alice_session.id
        )
        await store.load_proxy_context(session)  # warm the prepared-statement cache
        await asyncio.sleep(0.2)
        offset = postgres_cluster.log_file.stat().st_size
        assert await store.load_proxy_context(session) is not None
        await asyncio.sleep(0.2)
    with postgres_cluster.log_file.open(errors="replace") as log:
        log.seek(offset)
        lines = [line for line in log if line.startswith(f"[{database}]")]
    statements = [line for line in lines if "LOG:  statement:" in line or "LOG:  execute" in line]
    assert len(statements) == 1, lines
    assert "relay_browser_sessions" in statements[0]


# -- users and auth sessions (stand-alone administration) ---------------------------------


async def test_users(store: Store, clock: FakeClock) -> None:
    bob = await store.add_user("bob")
    alice = await store.add_user("alice")
    assert bob.created_at == clock.now
    assert await store.list_users() == [alice, bob]
    assert await store.get_user("alice") == alice
    assert await store.get_user("nobody") is None
    with pytest.raises(AlreadyExists):
        await store.add_user("alice")
    for bad in ("", " alice", "a" * 65, "-dash", "with space", "nul\x00", 42):
        with pytest.raises(InvalidInput):
            await store.add_user(bad)  # type: ignore[arg-type]


async def test_auth_sessions(store: Store, clock: FakeClock) -> None:
    alice = await store.add_user("alice")
    issued = await store.issue_auth_session(alice.id)
    assert issued.user_id == alice.id
    assert await store.get_auth_session(issued.id) == issued
    assert await store.get_auth_session(uuid4()) is None
    with pytest.raises(NotFound):
        await store.issue_auth_session(uuid4())
    with pytest.raises(InvalidInput):
        await store.get_auth_session(str(issued.id))  # type: ignore[arg-type]

    used_at = clock.advance(timedelta(hours=1))
    assert await store.touch_auth_session(issued.id)
    touched = await store.get_auth_session(issued.id)
    assert touched is not None
    assert touched.last_used_at == used_at
    assert touched.idle_since == used_at
    assert not await store.touch_auth_session(uuid4())


async def test_revoking_an_auth_session_revokes_its_browser_sessions(
    store: Store, clock: FakeClock
) -> None:
    world = await make_world(store)
    browser = await store.create_browser_session(world.host, world.alice.id, world.alice_session.id)
    revoked_at = clock.advance(timedelta(minutes=5))
    assert await store.revoke_auth_session(world.alice_session.id)
    assert not await store.revoke_auth_session(world.alice_session.id)  # already
    assert not await store.revoke_auth_session(uuid4())
    record = await store.get_auth_session(world.alice_session.id)
    assert record is not None
    assert record.revoked_at == revoked_at
    context = await store.load_proxy_context(browser)
    assert context is not None
    assert context.revoked_at == revoked_at


async def test_revoking_all_sessions_of_a_user(store: Store) -> None:
    world = await make_world(store)
    second = await store.issue_auth_session(world.bob.id)
    assert await store.revoke_auth_session(second.id)
    third = await store.issue_auth_session(world.bob.id)
    revoked = await store.revoke_user_auth_sessions(world.bob.id)
    assert sorted(revoked) == sorted([world.bob_session.id, third.id])  # not `second` again
    assert await store.revoke_user_auth_sessions(world.bob.id) == []
    alice = await store.get_auth_session(world.alice_session.id)
    assert alice is not None
    assert alice.revoked_at is None


# -- hosts ----------------------------------------------------------------------------------


async def test_upsert_host_creates_then_updates(store: Store, clock: FakeClock) -> None:
    alice = await store.add_user("alice")
    bob = await store.add_user("bob")
    created_at = clock.now
    host = await store.upsert_host(alice.id, "m-1", "laptop", "1.0")
    updated_at = clock.advance(timedelta(seconds=30))
    assert await store.upsert_host(alice.id, "m-1", "renamed", None) == host
    record = await store.get_host(host)
    assert record is not None
    assert (record.name, record.agent_version, record.status) == ("renamed", None, "offline")
    assert (record.created_at, record.updated_at) == (created_at, updated_at)
    assert (record.owner_user_id, record.machine_id) == (alice.id, "m-1")
    # The same machine id under another owner is another host.
    assert await store.upsert_host(bob.id, "m-1", "bob's") != host
    assert await store.upsert_host(alice.id, "m-2", "desktop") != host
    with pytest.raises(NotFound):
        await store.upsert_host(uuid4(), "m-1", "ghost")


@pytest.mark.parametrize(
    ("machine_id", "name", "agent_version"),
    [
        ("", "name", None),
        ("   ", "name", None),
        ("m", "", None),
        ("m", "x" * (MAX_HOST_NAME_LENGTH + 1), None),
        ("m\x00", "name", None),
        ("m", "line\nbreak", None),
        ("m", "name", "v" * 129),
        (7, "name", None),
    ],
)
async def test_upsert_host_validates(
    store: Store, machine_id: Any, name: Any, agent_version: Any
) -> None:
    alice = await store.add_user("alice")
    with pytest.raises(InvalidInput):
        await store.upsert_host(alice.id, machine_id, name, agent_version)
    with pytest.raises(InvalidInput):
        await store.upsert_host("not-a-uuid", "m", "name")  # type: ignore[arg-type]


async def test_host_status_and_last_seen(store: Store, clock: FakeClock) -> None:
    world = await make_world(store)
    seen_at = clock.advance(timedelta(seconds=1))
    assert await store.set_host_status(world.host, HostStatus.ONLINE)
    record = await store.get_host(world.host)
    assert record is not None
    assert (record.status, record.last_seen_at) == (HostStatus.ONLINE, seen_at)
    assert await store.set_host_status(world.host, "offline")
    record = await store.get_host(world.host)
    assert record is not None
    assert record.status is HostStatus.OFFLINE
    assert not await store.set_host_status(uuid4(), HostStatus.ONLINE)
    with pytest.raises(InvalidInput):
        await store.set_host_status(world.host, "away")


async def test_mark_all_hosts_offline(store: Store, clock: FakeClock) -> None:
    alice = await store.add_user("alice")
    stale, fresh, idle = [
        await store.upsert_host(alice.id, f"m-{n}", f"host {n}") for n in range(3)
    ]
    await store.set_host_status(stale, HostStatus.ONLINE)
    cutoff = clock.advance(timedelta(minutes=10))
    await store.set_host_status(fresh, HostStatus.ONLINE)
    # Only hosts not seen since the cutoff (relays sharing one database).
    assert await store.mark_all_hosts_offline(last_seen_before=cutoff) == 1
    statuses = {h.id: h.status for h in await store.list_hosts_for_user(alice.id)}
    assert statuses == {stale: "offline", fresh: "online", idle: "offline"}
    assert await store.mark_all_hosts_offline() == 1
    assert await store.mark_all_hosts_offline() == 0
    with pytest.raises(InvalidInput):
        await store.mark_all_hosts_offline(last_seen_before=datetime(2024, 1, 1))


async def test_touch_hosts(store: Store, clock: FakeClock) -> None:
    alice = await store.add_user("alice")
    hosts = [await store.upsert_host(alice.id, f"m-{n}", f"host {n}") for n in range(3)]
    seen_at = clock.advance(timedelta(seconds=20))
    # More ids than one IN list holds; unknown ones are ignored, duplicates counted once.
    ids = [*hosts[:2], hosts[0], *(uuid4() for _ in range(1200))]
    assert await store.touch_hosts(ids) == 2
    seen = {h.id: h.last_seen_at for h in await store.list_hosts_for_user(alice.id)}
    assert seen == {hosts[0]: seen_at, hosts[1]: seen_at, hosts[2]: None}
    assert await store.touch_hosts([]) == 0
    with pytest.raises(InvalidInput):
        await store.touch_hosts(uuid4() for _ in range(MAX_BATCH + 1))
    with pytest.raises(InvalidInput):
        await store.touch_hosts("abc")  # type: ignore[arg-type]


async def test_list_hosts_and_access(store: Store) -> None:
    world = await make_world(store)
    bobs = await store.upsert_host(world.bob.id, "bob-1", "another box")
    mine = await store.list_hosts_for_user(world.alice.id)
    assert [(h.id, h.owned) for h in mine] == [(world.host, True)]
    theirs = await store.list_hosts_for_user(world.bob.id)
    # By name: "alice laptop" < "another box".
    assert [(h.id, h.owned) for h in theirs] == [(world.host, False), (bobs, True)]
    assert theirs[0].shared_with_organization_id == world.org
    assert await store.list_hosts_for_user(world.carol.id) == []
    assert await store.list_hosts_for_user(uuid4()) == []

    assert await store.can_access_host(world.alice.id, world.host)
    assert await store.can_access_host(world.bob.id, world.host)
    assert not await store.can_access_host(world.carol.id, world.host)
    assert not await store.can_access_host(world.alice.id, bobs)
    assert not await store.can_access_host(world.alice.id, uuid4())

    assert await store.remove_organization_member(world.org, world.bob.id)
    assert not await store.can_access_host(world.bob.id, world.host)
    assert not await store.remove_organization_member(world.org, world.bob.id)
    assert await store.add_organization_member(world.org, world.bob.id)
    assert not await store.add_organization_member(world.org, world.bob.id)  # already
    assert await store.share_host(world.host, None)
    assert not await store.can_access_host(world.bob.id, world.host)
    assert await store.get_host(uuid4()) is None


async def test_organization_admin_validates(store: Store) -> None:
    world = await make_world(store)
    with pytest.raises(NotFound):
        await store.add_organization_member(uuid4(), world.bob.id)
    with pytest.raises(NotFound):
        await store.add_organization_member(world.org, uuid4())
    with pytest.raises(NotFound):
        await store.share_host(world.host, uuid4())
    assert not await store.share_host(uuid4(), world.org)
    with pytest.raises(InvalidInput):
        await store.add_organization(" ")


# -- relay browser sessions and the proxy context -----------------------------------------


async def test_create_browser_session_checks_access(store: Store, clock: FakeClock) -> None:
    world = await make_world(store)
    owner = await store.create_browser_session(world.host, world.alice.id, world.alice_session.id)
    member = await store.create_browser_session(world.host, world.bob.id, world.bob_session.id)
    assert owner != member
    with pytest.raises(AccessDenied):
        await store.create_browser_session(world.host, world.carol.id, world.carol_session.id)
    with pytest.raises(AccessDenied):
        await store.create_browser_session(uuid4(), world.alice.id, world.alice_session.id)
    with pytest.raises(NotFound):
        await store.create_browser_session(world.host, world.alice.id, uuid4())
    with pytest.raises(InvalidInput):
        await store.create_browser_session(world.host, world.alice.id, None)  # type: ignore[arg-type]

    context = await store.load_proxy_context(member)
    assert context is not None
    assert (context.host_id, context.user_id, context.created_at) == (
        world.host,
        world.bob.id,
        clock.now,
    )
    assert context.auth_session == world.bob_session
    assert context.user_has_access
    assert (context.revoked_at, context.last_used_at) == (None, None)


async def test_proxy_context_follows_every_check(store: Store, clock: FakeClock) -> None:
    world = await make_world(store)
    session = await store.create_browser_session(world.host, world.bob.id, world.bob_session.id)
    assert await store.load_proxy_context(uuid4()) is None

    used_at = clock.advance(timedelta(seconds=3))
    assert await store.touch_browser_session(session)
    context = await store.load_proxy_context(session)
    assert context is not None
    assert context.last_used_at == used_at
    assert not await store.touch_browser_session(uuid4())

    # Leaving the organization removes access at once, without touching the session.
    await store.remove_organization_member(world.org, world.bob.id)
    context = await store.load_proxy_context(session)
    assert context is not None
    assert not context.user_has_access

    revoked_at = clock.advance(timedelta(seconds=3))
    assert await store.revoke_browser_session(session)
    assert not await store.revoke_browser_session(session)
    assert not await store.revoke_browser_session(uuid4())
    context = await store.load_proxy_context(session)
    assert context is not None
    assert context.revoked_at == revoked_at
    with pytest.raises(InvalidInput):
        await store.load_proxy_context(str(session))  # type: ignore[arg-type]


async def test_timestamps_are_utc_and_exact(store: Store, clock: FakeClock) -> None:
    clock.now = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    user = await store.add_user("alice")
    session = await store.issue_auth_session(user.id)
    loaded = await store.get_auth_session(session.id)
    assert loaded is not None
    assert loaded.created_at == clock.now
    assert loaded.created_at.tzinfo is UTC


async def test_clock_must_be_aware(database_url: str) -> None:
    async with await Store.open(database_url, clock=lambda: datetime(2030, 1, 1)) as store:
        with pytest.raises(InvalidInput):
            await store.add_user("alice")


# -- the JWT check against a real store ---------------------------------------------------


async def test_authenticate_against_the_store(store: Store, clock: FakeClock) -> None:
    alice = await store.add_user("alice")
    issued = await issue_token(store, SECRET, alice.id, timedelta(hours=1))
    auth = Authenticator(SECRET, store)
    identity = await auth.authenticate(f"Bearer {issued.token}")
    assert (identity.user_id, identity.auth_session_id) == (alice.id, issued.auth_session_id)
    assert identity.token_expires_at == issued.expires_at

    assert await store.revoke_auth_session(issued.auth_session_id)
    with pytest.raises(AuthError) as caught:
        await auth.verify(issued.token)
    assert caught.value.failure is AuthFailure.SESSION_REVOKED


async def test_idle_auth_session_is_refused(store: Store, clock: FakeClock) -> None:
    alice = await store.add_user("alice")
    clock.advance(-timedelta(days=366))  # the session was created (and last used) back then
    issued = await issue_token(store, SECRET, alice.id, timedelta(hours=1))
    with pytest.raises(AuthError) as caught:
        await Authenticator(SECRET, store).verify(issued.token)
    assert caught.value.failure is AuthFailure.SESSION_IDLE
    clock.advance(timedelta(days=366))
    assert await store.touch_auth_session(issued.auth_session_id)
    assert (await Authenticator(SECRET, store).verify(issued.token)).user_id == alice.id

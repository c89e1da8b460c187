"""Databases made by the SQLAlchemy store (tests/integration/store_compat, see its README)
open, read and write alike with the store's own layer; a fresh database gets the catalog
SQLAlchemy made."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest

from agent_relay.store import (
    SCHEMA_VERSION,
    AuthSessionRecord,
    HostStatus,
    Store,
    UserRecord,
)
from tests.integration.conftest import BACKENDS
from tests.support.clock import FakeClock
from tests.support.pgcluster import PostgresCluster

FIXTURES = Path(__file__).parent / "store_compat"
MICROSECOND = timedelta(microseconds=1)


def t(n: int) -> datetime:
    """The time of the fixture clock's n-th call."""
    return datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC) + n * timedelta(
        seconds=1, microseconds=1
    )


@dataclass(frozen=True)
class OldDatabase:
    url: str
    ids: dict[str, UUID]


def restore(cluster: PostgresCluster, url: str, dump: Path) -> None:
    with dump.open() as sql:
        subprocess.run(
            [str(cluster.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url],
            stdin=sql,
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(params=BACKENDS)
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OldDatabase]:
    backend = "sqlite" if request.param == "sqlite" else "postgresql"
    ids = {k: UUID(v) for k, v in json.loads((FIXTURES / "ids.json").read_text())[backend].items()}
    if backend == "sqlite":
        path = tmp_path / "relay.sqlite3"
        shutil.copyfile(FIXTURES / "main_v3.sqlite3", path)
        path.chmod(0o600)
        yield OldDatabase(f"sqlite:///{path}", ids)
        return
    url: str = request.getfixturevalue("postgres_url")
    restore(request.getfixturevalue("postgres_cluster"), url, FIXTURES / "main_v3_postgresql.sql")
    yield OldDatabase(url, ids)


async def test_an_old_database_reads_as_it_was_written(old_database: OldDatabase) -> None:
    ids = old_database.ids
    async with await Store.open(old_database.url) as store:
        assert await store.list_users() == [
            UserRecord(ids["alice"], "alice", t(1)),
            UserRecord(ids["bob"], "bob", t(2)),
        ]
        login = AuthSessionRecord(ids["login"], ids["alice"], t(5), t(9), None)
        bob_login = AuthSessionRecord(ids["bob_login"], ids["bob"], t(6), None, None)
        old = AuthSessionRecord(ids["old"], ids["bob"], t(7), None, t(8))
        assert await store.list_auth_sessions() == [login, bob_login, old]
        assert await store.get_auth_session(ids["login"]) == login
        # Timestamps compare with the stored ones to the microsecond, both ways.
        assert await store.auth_sessions_revoked_since(t(8)) == [ids["old"]]
        assert await store.auth_sessions_revoked_since(t(8) + MICROSECOND) == []

        desk, laptop = await store.list_all_hosts()
        assert (desk.id, desk.name, desk.machine_id) == (ids["host2"], "desk", "machine-2")
        assert desk.shared_with_organization_id is None
        assert (desk.status, desk.last_seen_at, desk.agent_version) == (
            HostStatus.OFFLINE,
            None,
            None,
        )
        assert (laptop.id, laptop.owner_user_id) == (ids["host"], ids["alice"])
        assert laptop.shared_with_organization_id == ids["org"]
        assert (laptop.status, laptop.last_seen_at) == (HostStatus.ONLINE, t(13))
        assert (laptop.created_at, laptop.updated_at, laptop.agent_version) == (
            t(10),
            t(13),
            "1.2.3",
        )
        assert laptop.owned
        assert type(laptop.id) is UUID

        (shared,) = await store.list_hosts_for_user(ids["bob"])
        assert shared.id == ids["host"]
        assert not shared.owned
        assert await store.can_access_host(ids["bob"], ids["host"])
        assert not await store.can_access_host(ids["bob"], ids["host2"])

        context = await store.load_proxy_context(ids["browser"])
        assert context is not None
        assert (context.host_id, context.user_id) == (ids["host"], ids["bob"])
        assert (context.created_at, context.last_used_at, context.revoked_at) == (
            t(15),
            t(16),
            None,
        )
        assert context.auth_session == bob_login
        assert context.user_has_access
        revoked = await store.load_proxy_context(ids["b2"])
        assert revoked is not None
        assert revoked.revoked_at == t(18)
        assert await store.count_live_browser_sessions(ids["bob"], t(16)) == 1
        assert await store.count_live_browser_sessions(ids["bob"], t(16) + MICROSECOND) == 0

        found = await store.find_connecting_hosts(
            [(ids["alice"], "machine-1"), (ids["alice"], "machine-2")]
        )
        assert found[(ids["alice"], "machine-1")].pinned_key == "k" * 43
        assert found[(ids["alice"], "machine-2")].pinned_key is None
        assert await store.pinned_host_key(ids["host"]) == "k" * 43


async def test_an_old_database_takes_writes(old_database: OldDatabase) -> None:
    ids = old_database.ids
    clock = FakeClock(t(100))
    async with await Store.open(old_database.url, clock=clock) as store:
        # The unique key of the old table still drives the upsert: the same host.
        assert await store.upsert_host(ids["alice"], "machine-1", "laptop 2") == ids["host"]
        assert await store.mark_all_hosts_offline(last_seen_before=t(13)) == 0
        assert await store.mark_all_hosts_offline(last_seen_before=t(13) + MICROSECOND) == 1
        carol = await store.add_user("carol")
        await store.add_organization_member(ids["org"], carol.id)
        login = await store.issue_auth_session(carol.id)
        session = await store.create_browser_session(ids["host"], carol.id, login.id)
        assert await store.revoke_user_auth_sessions(ids["bob"]) == [ids["bob_login"]]
        context = await store.load_proxy_context(ids["browser"])
        assert context is not None
        assert context.revoked_at == t(100)
        assert await store.get_user("carol") == carol
        revoked_now = set(await store.auth_sessions_revoked_since(t(8)))
        assert revoked_now == {ids["old"], ids["bob_login"]}
        assert (await store.load_proxy_context(session)) is not None
    # Reopened: nothing to migrate, the version unchanged.
    async with await Store.open(old_database.url) as store:
        assert await store.get_host(ids["host"]) is not None
    if old_database.url.startswith("sqlite:///"):
        path = old_database.url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            (version,) = conn.execute("SELECT version FROM agent_relay_schema_version").fetchone()
            row = conn.execute(
                "SELECT id, created_at, typeof(id), typeof(created_at) FROM users "
                "WHERE username = 'carol'"
            ).fetchone()
            old_row = conn.execute(
                "SELECT id, created_at FROM users WHERE username = 'alice'"
            ).fetchone()
        assert version == SCHEMA_VERSION
        # Stored as SQLAlchemy stored them: 32 hex digits, UTC text with microseconds.
        assert row == (carol.id.hex, "2026-11-30 12:01:40.123556", "text", "text")
        assert re.fullmatch(r"[0-9a-f]{32}", old_row[0])
        assert old_row[1] == "2026-11-30 12:00:01.123457"
    else:
        conn = await asyncpg.connect(old_database.url)
        try:
            assert await conn.fetchval("SELECT version FROM agent_relay_schema_version") == 3
            stored = await conn.fetchval("SELECT created_at FROM users WHERE username = 'carol'")
        finally:
            await conn.close()
        assert stored == t(100)


def _normalized(sql: str | None) -> str | None:
    return None if sql is None else " ".join(sql.split())


def _sqlite_catalog(path: Path) -> set[tuple[str, str, str, str | None]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return {(kind, name, table, _normalized(sql)) for kind, name, table, sql in rows}


async def test_a_fresh_sqlite_database_has_the_catalog_sqlalchemy_made(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    await (await Store.open(str(path))).close()
    assert _sqlite_catalog(path) == _sqlite_catalog(FIXTURES / "main_v3.sqlite3")


def _schema_dump(cluster: PostgresCluster, url: str) -> list[str]:
    dump = subprocess.run(
        [
            str(cluster.bindir / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-d",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [
        line
        for line in dump.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]


async def test_a_fresh_postgres_database_has_the_schema_sqlalchemy_made(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    await (await Store.open(postgres_url)).close()
    made = (FIXTURES / "main_v3_postgresql_schema.sql").read_text().splitlines()
    expected = [
        line
        for line in made
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]
    assert _schema_dump(postgres_cluster, postgres_url) == expected

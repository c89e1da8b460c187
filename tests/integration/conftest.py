"""Integration fixtures: one throwaway PostgreSQL cluster per test session, a fresh
database per test, and a fresh stand-alone Store on each backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from agent_relay.store import (
    Store,
)
from tests.support.clock import FakeClock
from tests.support.pgcluster import (
    PostgresCluster,
    PostgresNotInstalled,
    find_bindir,
    running_cluster,
)
from tests.support.reference_db import REFERENCE_DDL, ReferenceDatabase

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    try:
        find_bindir()
    except PostgresNotInstalled as exc:  # scripts/test.sh installs it: a missing one fails
        pytest.fail(f"{exc} (run scripts/postgres.sh)")
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database (dropped afterwards), as a superuser URL."""
    name = postgres_cluster.create_database()
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(database_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    """A migrated stand-alone store on a fresh database, with the fake clock."""
    opened = await Store.open(database_url, clock=clock)
    try:
        yield opened
    finally:
        await opened.close()


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

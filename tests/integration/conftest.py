"""Integration fixtures: one throwaway PostgreSQL cluster per test session, a fresh
database per test, and a fresh stand-alone Store on each backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_relay.store import Store

from .pgcluster import PostgresCluster, PostgresNotInstalled, find_bindir, running_cluster

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


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'relay.sqlite3'}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@dataclass
class FakeClock:
    """The store's clock, moved by hand. Starts at the real time (microseconds kept, to
    check that both backends keep them)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


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

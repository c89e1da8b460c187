"""Database URL handling: SQLite defaults and paths, libpq-style PostgreSQL URLs."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from agent_relay.store import InvalidDatabaseUrl, default_sqlite_path, parse_database_url


def test_default_is_a_sqlite_file_in_the_user_data_dir() -> None:
    target = parse_database_url(None)
    assert target.backend == "sqlite"
    assert target.sqlite_path == Path(platformdirs.user_data_dir("agent-relay")) / "relay.sqlite3"
    assert parse_database_url(None, data_dir="/srv/relay").sqlite_path == Path(
        "/srv/relay/relay.sqlite3"
    )
    assert default_sqlite_path("/x") == Path("/x/relay.sqlite3")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("relay.db", Path.cwd() / "relay.db"),
        ("/var/lib/relay.db", Path("/var/lib/relay.db")),
        ("sqlite:///relay.db", Path.cwd() / "relay.db"),
        ("sqlite:////var/lib/relay.db", Path("/var/lib/relay.db")),
        ("sqlite+aiosqlite:////var/lib/relay.db", Path("/var/lib/relay.db")),
        ("  /var/lib/relay.db\n", Path("/var/lib/relay.db")),
    ],
)
def test_sqlite_paths(url: str, path: Path) -> None:
    target = parse_database_url(url)
    assert (target.backend, target.sqlite_path) == ("sqlite", path)


@pytest.mark.parametrize(
    ("url", "dsn", "display"),
    [
        (
            "postgres://relay:hunter2@db:5432/remote?sslmode=disable",
            "postgresql://relay:hunter2@db:5432/remote?sslmode=disable",
            "postgresql://relay:***@db:5432/remote?sslmode=disable",
        ),
        (
            "postgresql+asyncpg://relay@db/remote",
            "postgresql://relay@db/remote",
            "postgresql://relay@db/remote",
        ),
        (
            "postgresql://db/remote?user=relay&password=hunter2&sslmode=verify-full",
            "postgresql://db/remote?user=relay&password=hunter2&sslmode=verify-full",
            "postgresql://db/remote?user=relay&password=***&sslmode=verify-full",
        ),
        (
            "postgresql:///remote?host=/run/postgresql",
            "postgresql:///remote?host=/run/postgresql",
            "postgresql:///remote?host=/run/postgresql",
        ),
    ],
)
def test_postgres_urls_go_to_asyncpg_as_libpq_dsns(url: str, dsn: str, display: str) -> None:
    target = parse_database_url(url)
    assert target.backend == "postgresql"
    assert target.postgres_dsn == dsn
    assert target.display == display
    assert "hunter2" not in target.display


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "mysql://db/relay",
        "postgresql+psycopg://db/relay",
        "postgresql://db:port/relay",
        "postgresql://db/relay?sslmode=sometimes",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///relay.db?mode=ro",
    ],
)
def test_unusable_urls(url: str) -> None:
    with pytest.raises(InvalidDatabaseUrl):
        parse_database_url(url)

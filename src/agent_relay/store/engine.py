"""Database URLs and engines: SQLite (aiosqlite) and PostgreSQL (asyncpg).

PostgreSQL URLs are taken as the reference relay takes them (libpq style:
``postgres://`` or ``postgresql://``, with ``?sslmode=…`` and the other libpq
parameters). SQLAlchemy would hand each query parameter to ``asyncpg.connect`` as a
keyword, which asyncpg refuses for ``sslmode``; so the URL goes to asyncpg's own
libpq-compatible DSN parser instead, through ``async_creator``, and SQLAlchemy only
picks the dialect.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import platformdirs
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import InvalidDatabaseUrl, StoreUnavailable

DEFAULT_DATABASE_FILE = "relay.sqlite3"
POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")
SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# Execution option read by the SQLite "begin" hook: the BEGIN to emit, or none.
SQLITE_BEGIN_OPTION = "agent_relay_sqlite_begin"
SQLITE_BEGIN_MODES = ("DEFERRED", "IMMEDIATE")


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed database URL. ``display`` is safe to log (no password)."""

    backend: Literal["sqlite", "postgresql"]
    display: str
    sqlite_path: Path | None = None
    postgres_dsn: str | None = None


def default_sqlite_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The stand-alone database file: ``relay.sqlite3`` in the user's data directory."""
    base = (
        Path(data_dir) if data_dir is not None else Path(platformdirs.user_data_dir("agent-relay"))
    )
    return base / DEFAULT_DATABASE_FILE


def parse_database_url(
    url: str | None, *, data_dir: str | os.PathLike[str] | None = None
) -> DatabaseTarget:
    """Accepts None (the default SQLite file), a plain file path, ``sqlite:///path``,
    or a PostgreSQL URL. Raises InvalidDatabaseUrl."""
    if url is None:
        path = default_sqlite_path(data_dir)
        return DatabaseTarget("sqlite", f"sqlite:///{path}", sqlite_path=path)
    if not isinstance(url, str) or not url.strip():
        raise InvalidDatabaseUrl("the database URL is empty")
    url = url.strip()
    if "://" not in url:
        path = Path(url).expanduser().resolve()
        return DatabaseTarget("sqlite", f"sqlite:///{path}", sqlite_path=path)
    scheme = url.split("://", 1)[0].lower()
    if scheme in SQLITE_SCHEMES:
        return _parse_sqlite_url(url)
    if scheme in POSTGRES_SCHEMES:
        return _parse_postgres_url(url)
    raise InvalidDatabaseUrl(
        f"unsupported database URL scheme {scheme!r}: use postgresql://… (or postgres://…), "
        "sqlite:///path, or a file path"
    )


def _parse_sqlite_url(url: str) -> DatabaseTarget:
    # sqlite:///relative/path, sqlite:////absolute/path (SQLAlchemy's convention).
    rest = url.split("://", 1)[1]
    if "?" in rest:
        raise InvalidDatabaseUrl("SQLite URLs take no query parameters")
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        raise InvalidDatabaseUrl(
            "a SQLite URL needs a file (sqlite:///relative/path or sqlite:////absolute/path); "
            "in-memory databases are not supported"
        )
    path = Path(rest[1:]).expanduser().resolve()
    return DatabaseTarget("sqlite", f"sqlite:///{path}", sqlite_path=path)


def _parse_postgres_url(url: str) -> DatabaseTarget:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric port
    except ValueError as exc:
        raise InvalidDatabaseUrl(f"malformed PostgreSQL URL: {exc}") from None
    del port
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "sslmode" and value not in SSL_MODES:
            raise InvalidDatabaseUrl(f"sslmode={value!r} is not one of {', '.join(SSL_MODES)}")
    # Only the scheme changes: rebuilding the URL would lose an empty authority
    # (postgresql:///db?host=/run/postgresql, a unix socket).
    dsn = "postgresql://" + url.split("://", 1)[1]
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"
    query = "&".join(
        f"{key}=***" if key == "password" else f"{key}={value}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    display = f"postgresql://{netloc}{parts.path}" + (f"?{query}" if query else "")
    return DatabaseTarget("postgresql", display, postgres_dsn=dsn)


def create_engine(
    target: DatabaseTarget,
    *,
    pool_size: int,
    connect_timeout: float,
    statement_timeout: float,
) -> AsyncEngine:
    if target.backend == "sqlite":
        assert target.sqlite_path is not None
        return _create_sqlite_engine(target.sqlite_path, pool_size, statement_timeout)
    assert target.postgres_dsn is not None
    return create_async_engine(
        URL.create("postgresql+asyncpg"),
        async_creator=_postgres_connector(
            target.postgres_dsn, target.display, connect_timeout, statement_timeout
        ),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=connect_timeout,
        # Connections older than this are replaced at checkout; no ping per checkout
        # (that would be a second round trip on the proxy's hot path).
        pool_recycle=1800,
    )


def _postgres_connector(
    dsn: str, display: str, connect_timeout: float, statement_timeout: float
) -> Callable[[], Awaitable[Any]]:
    async def connect() -> Any:
        import asyncpg  # only a relay on PostgreSQL loads the driver (3 MiB)

        try:
            return await asyncpg.connect(
                dsn, timeout=connect_timeout, command_timeout=statement_timeout
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"cannot connect to {display}: {exc}") from exc

    return connect


def _create_sqlite_engine(path: Path, pool_size: int, busy_timeout: float) -> AsyncEngine:
    engine = create_async_engine(
        URL.create("sqlite+aiosqlite", database=str(path)),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=busy_timeout,
    )
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver would BEGIN on its own before writes only; we emit BEGIN ourselves
        # (on_begin) so a write transaction can take the lock up front (IMMEDIATE) and
        # wait out busy_timeout instead of failing on a lock upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"busy_timeout = {busy_ms}",
            "journal_mode = WAL",  # readers never block the writer, nor it them
            "synchronous = NORMAL",  # durable enough with WAL, and much faster
            "foreign_keys = ON",  # the ON DELETE CASCADE of the schema needs it
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION)
        if mode is not None:
            assert mode in SQLITE_BEGIN_MODES
            conn.exec_driver_sql(f"BEGIN {mode}")

    return engine

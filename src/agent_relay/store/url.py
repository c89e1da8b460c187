"""Database URLs: SQLite (a file path or ``sqlite:///path``) and PostgreSQL.

PostgreSQL URLs are taken as the reference relay takes them (libpq style:
``postgres://`` or ``postgresql://``, with ``?sslmode=…`` and the other libpq
parameters); the URL goes whole to asyncpg's own libpq-compatible DSN parser (pool.py),
so every parameter it knows keeps its libpq meaning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

import platformdirs

from .errors import InvalidDatabaseUrl

DEFAULT_DATABASE_FILE = "relay.sqlite3"
POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")
SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


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
    # sqlite:///relative/path, sqlite:////absolute/path (the convention of SQLAlchemy URLs, kept).
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

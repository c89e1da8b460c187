"""Connections: a small asyncpg pool for PostgreSQL, a few aiosqlite connections for SQLite.

``Database.connect(transaction=…)`` lends a :class:`Connection`. Without a transaction
every statement commits on its own (PostgreSQL: asyncpg's autocommit, one round trip per
statement; SQLite: no BEGIN). With one, the statements run in a transaction committed at
the end and rolled back on an error; on SQLite it starts with ``BEGIN IMMEDIATE``, so a
writer waits for the lock (up to the busy timeout) instead of failing on an upgrade midway.

The drivers' errors become store errors here and nowhere else (:func:`_translate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConstraintViolation, DatabaseError, StoreError, StoreUnavailable
from .sql import render
from .url import DatabaseTarget
from .values import Backend, Kind, decode

if TYPE_CHECKING:
    import aiosqlite

Row = dict[str, Any]
Kinds = Mapping[str, Kind]
SqliteBegin = Literal["DEFERRED", "IMMEDIATE"]

# Idle PostgreSQL connections older than this are closed (a middlebox may have dropped
# them); a checkout never pings (that would be a round trip on the proxy's hot path).
_PG_IDLE_LIFETIME = 300.0


class Connection:
    """One connection lent by :meth:`Database.connect`. Parameters are named (sql.py);
    ``kinds`` names the result columns whose values need converting (values.py)."""

    backend: Backend

    async def execute(self, sql: str, params: Mapping[str, object] | None = None) -> int:
        """Runs a statement; returns the number of rows it changed."""
        raise NotImplementedError

    async def fetch(
        self, sql: str, params: Mapping[str, object] | None = None, kinds: Kinds | None = None
    ) -> list[Row]:
        raise NotImplementedError

    async def fetchrow(
        self, sql: str, params: Mapping[str, object] | None = None, kinds: Kinds | None = None
    ) -> Row | None:
        rows = await self.fetch(sql, params, kinds)
        return rows[0] if rows else None

    async def fetchval(
        self, sql: str, params: Mapping[str, object] | None = None, kind: Kind | None = None
    ) -> Any:
        """The first column of the first row, or None if there is no row."""
        rows = await self.fetch(sql, params)
        if not rows:
            return None
        value = next(iter(rows[0].values()))
        return decode(value, kind) if kind is not None else value


def _decoded(rows: list[Row], kinds: Kinds | None) -> list[Row]:
    if kinds:
        for row in rows:
            for name, value in row.items():
                kind = kinds.get(name)
                if kind is not None:
                    row[name] = decode(value, kind)
    return rows


class Database:
    """The connections of one database. Close it with :meth:`close`."""

    def __init__(self, target: DatabaseTarget) -> None:
        self.target = target

    @property
    def backend(self) -> Backend:
        return self.target.backend

    def connect(
        self, *, transaction: bool, sqlite_begin: SqliteBegin = "IMMEDIATE"
    ) -> contextlib.AbstractAsyncContextManager[Connection]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def open_database(
    target: DatabaseTarget, *, pool_size: int, connect_timeout: float, statement_timeout: float
) -> Database:
    """Connects lazily: the first :meth:`Database.connect` opens the first connection."""
    if target.backend == "sqlite":
        assert target.sqlite_path is not None
        return _SqliteDatabase(target, target.sqlite_path, pool_size, statement_timeout)
    return _PostgresDatabase(target, pool_size, connect_timeout, statement_timeout)


# -- errors ------------------------------------------------------------------------------


def _translate(exc: BaseException, display: str) -> BaseException | None:
    """The store's error for a driver's, or None to let it pass (not the driver's)."""
    if isinstance(exc, StoreError | DatabaseError):
        return None
    if isinstance(exc, sqlite3.IntegrityError):
        return ConstraintViolation(exc)
    # Locked too long, disk I/O, a file that cannot be opened (as SQLAlchemy had it).
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError):
        return StoreUnavailable(f"database {display}: {exc}")
    if isinstance(exc, sqlite3.Error):
        return DatabaseError(exc)
    if isinstance(exc, OSError | TimeoutError):
        return StoreUnavailable(f"database {display}: {exc or type(exc).__name__}")
    asyncpg = _asyncpg_if_loaded()
    if asyncpg is None:
        return None
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return ConstraintViolation(exc)
    if isinstance(
        exc,
        asyncpg.InterfaceError  # the connection is closed, or broke
        | asyncpg.PostgresConnectionError  # 08: connection exceptions
        | asyncpg.OperatorInterventionError  # 57: shut down, cannot connect now, canceled
        | asyncpg.InsufficientResourcesError,  # 53: too many connections, disk full
    ):
        return StoreUnavailable(f"database {display}: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseError(exc)
    return None


def _asyncpg_if_loaded() -> Any:
    # A relay on SQLite never loads asyncpg (3 MiB): no asyncpg error can reach it.
    return sys.modules.get("asyncpg")


@contextlib.contextmanager
def _translated(display: str) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        mapped = _translate(exc, display)
        if mapped is None:
            raise
        raise mapped from exc


# -- SQLite ------------------------------------------------------------------------------


class _SqliteConnection(Connection):
    backend: Backend = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Mapping[str, object] | None = None) -> int:
        text, args = render(sql, params, "sqlite")
        cursor = await self.conn.execute(text, args)
        count = cursor.rowcount
        await cursor.close()
        return max(count, 0)

    async def fetch(
        self, sql: str, params: Mapping[str, object] | None = None, kinds: Kinds | None = None
    ) -> list[Row]:
        text, args = render(sql, params, "sqlite")
        rows = await self.conn.execute_fetchall(text, args)
        return _decoded([dict(row) for row in rows], kinds)


class _SqliteDatabase(Database):
    """Up to 2 * pool_size connections (each is a thread of aiosqlite's), pool_size of
    them kept when idle; WAL lets readers run beside the one writer."""

    def __init__(
        self, target: DatabaseTarget, path: Path, pool_size: int, busy_timeout: float
    ) -> None:
        super().__init__(target)
        self._path = path
        self._busy_timeout = busy_timeout
        self._keep = pool_size
        self._slots = asyncio.Semaphore(2 * pool_size)
        self._idle: list[aiosqlite.Connection] = []
        self._closed = False

    async def _open(self) -> aiosqlite.Connection:
        import aiosqlite

        # isolation_level=None: sqlite3 would BEGIN on its own before writes only; we
        # BEGIN ourselves, so a write transaction can take the lock up front.
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            for pragma in (
                f"busy_timeout = {int(self._busy_timeout * 1000)}",
                "journal_mode = WAL",  # readers never block the writer, nor it them
                "synchronous = NORMAL",  # durable enough with WAL, and much faster
                "foreign_keys = ON",  # the ON DELETE CASCADE of the schema needs it
            ):
                await conn.execute(f"PRAGMA {pragma}")
        except BaseException:
            await conn.close()
            raise
        return conn

    @contextlib.asynccontextmanager
    async def connect(
        self, *, transaction: bool, sqlite_begin: SqliteBegin = "IMMEDIATE"
    ) -> AsyncIterator[Connection]:
        assert sqlite_begin in ("DEFERRED", "IMMEDIATE")
        display = self.target.display
        with _translated(display):
            if self._closed:
                raise StoreUnavailable(f"database {display}: the store is closed")
            try:
                async with asyncio.timeout(self._busy_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise StoreUnavailable(
                    f"database {display}: no connection free within {self._busy_timeout:g} s"
                ) from None
            conn: aiosqlite.Connection | None = None
            reusable = False
            try:
                conn = self._idle.pop() if self._idle else await self._open()
                lent = _SqliteConnection(conn)
                if transaction:
                    await conn.execute(f"BEGIN {sqlite_begin}")
                try:
                    yield lent
                    if transaction:
                        await conn.execute("COMMIT")
                except Exception as exc:
                    if transaction:
                        with contextlib.suppress(Exception):
                            await conn.execute("ROLLBACK")
                    # An expected refusal (a constraint, NotFound) leaves it usable; a
                    # broken or locked database, or a cancelled statement, does not.
                    reusable = not isinstance(_translate(exc, display) or exc, StoreUnavailable)
                    raise
                else:
                    reusable = True
            finally:
                try:
                    if conn is not None:
                        reusable = reusable and not conn.in_transaction and not self._closed
                        if reusable and len(self._idle) < self._keep:
                            self._idle.append(conn)
                        else:
                            await conn.close()
                finally:
                    self._slots.release()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()


# -- PostgreSQL --------------------------------------------------------------------------


class _PostgresConnection(Connection):
    backend: Backend = "postgresql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Mapping[str, object] | None = None) -> int:
        text, args = render(sql, params, "postgresql")
        status: str = await self.conn.execute(text, *args)
        # "UPDATE 3", "INSERT 0 1", "DELETE 0", "CREATE TABLE": the count is last, if any
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def fetch(
        self, sql: str, params: Mapping[str, object] | None = None, kinds: Kinds | None = None
    ) -> list[Row]:
        text, args = render(sql, params, "postgresql")
        rows = await self.conn.fetch(text, *args)
        return _decoded([dict(row.items()) for row in rows], kinds)


async def _keep_session(conn: Any) -> None:
    """The pool's reset on release, instead of asyncpg's (a round trip per release,
    ``RESET ALL`` and the rest, on the proxy's hot path). The store leaves no session
    state behind: no LISTEN, no SET, only transaction-scoped locks; an open transaction
    asyncpg rolls back before this."""
    del conn


class _PostgresDatabase(Database):
    """An asyncpg pool of up to 2 * pool_size connections, opened on demand. The URL goes
    to asyncpg whole, as a libpq DSN (``?sslmode=`` and the rest keep their meaning)."""

    def __init__(
        self,
        target: DatabaseTarget,
        pool_size: int,
        connect_timeout: float,
        statement_timeout: float,
    ) -> None:
        super().__init__(target)
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self._pool: Any = None
        self._starting: asyncio.Lock = asyncio.Lock()
        self._closed = False

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._starting:
            if self._pool is None:
                import asyncpg  # only a relay on PostgreSQL loads the driver

                self._pool = await asyncpg.create_pool(
                    self.target.postgres_dsn,
                    min_size=0,
                    max_size=2 * self._pool_size,
                    max_inactive_connection_lifetime=_PG_IDLE_LIFETIME,
                    timeout=self._connect_timeout,
                    command_timeout=self._statement_timeout,
                    reset=_keep_session,
                )
        return self._pool

    @contextlib.asynccontextmanager
    async def connect(
        self, *, transaction: bool, sqlite_begin: SqliteBegin = "IMMEDIATE"
    ) -> AsyncIterator[Connection]:
        display = self.target.display
        with _translated(display):
            if self._closed:
                raise StoreUnavailable(f"database {display}: the store is closed")
            pool = await self._get_pool()
            try:
                conn = await pool.acquire(timeout=self._connect_timeout)
            except Exception as exc:
                if _translate(exc, display) is None and not isinstance(exc, TimeoutError):
                    raise
                raise StoreUnavailable(
                    f"cannot connect to {display}: {exc or type(exc).__name__}"
                ) from exc
            try:
                lent = _PostgresConnection(conn)
                if transaction:
                    async with conn.transaction():
                        yield lent
                else:
                    yield lent
            finally:
                await pool.release(conn)

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                # close() waits for connections still lent; past the timeout, cut them.
                async with asyncio.timeout(self._connect_timeout):
                    await pool.close()
            except Exception:
                pool.terminate()

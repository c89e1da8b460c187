"""The relay's database: one async API over SQLite (stand-alone) or PostgreSQL.

Two modes. Stand-alone: agent-relay owns the database, creates and migrates every table,
and the admin methods (users, auth sessions, organizations) work. Shared: the database
belongs to VibeKanban's remote API; the relay reads ``users``, ``auth_sessions`` and
``organization_member_metadata``, writes only ``hosts`` and ``relay_browser_sessions``,
and never runs DDL.

Statements that stand alone run in autocommit (on PostgreSQL: one round trip each, no
BEGIN/COMMIT); the few multi-statement writes run in a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self
from uuid import UUID, uuid4

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Uuid,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import validation as check
from .engine import SQLITE_BEGIN_OPTION, DatabaseTarget, create_engine, parse_database_url
from .errors import (
    AccessDenied,
    AlreadyExists,
    InvalidInput,
    NotFound,
    SchemaMismatch,
    SharedModeRefused,
    StoreError,
    StoreUnavailable,
)
from .migrations import check_shared_schema, create_own_tables, has_own_tables, migrate
from .records import (
    AuthSessionRecord,
    ConnectingHost,
    HostRecord,
    HostStatus,
    ProxyContext,
    UserRecord,
)
from .schema import (
    UtcDateTime,
    auth_sessions,
    host_keys,
    hosts,
    organization_member_metadata,
    organizations,
    relay_browser_sessions,
    users,
)

_IN_CHUNK = 500  # ids per IN (...) list; well under both backends' parameter limits


class StoreMode(enum.StrEnum):
    STANDALONE = "standalone"
    SHARED = "shared"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Open with ``await Store.open(url, mode=…)``; close with ``await store.close()``
    (or use it as an async context manager).

    Every method raises InvalidInput for bad arguments and StoreUnavailable when the
    database does not answer; nothing else escapes except the documented StoreErrors.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        target: DatabaseTarget,
        mode: StoreMode,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._target = target
        self._mode = mode
        self._clock = clock
        # Stand-alone: always. Shared: when agent-relay's own tables exist there.
        self.host_keys_enabled = mode is StoreMode.STANDALONE

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        mode: StoreMode | str = StoreMode.STANDALONE,
        data_dir: str | os.PathLike[str] | None = None,
        clock: Callable[[], datetime] = utc_now,
        pool_size: int = 10,
        connect_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        create_own: bool = False,
    ) -> Store:
        """Connects, then migrates (stand-alone) or checks the schema (shared).

        ``url``: None for ``relay.sqlite3`` in ``data_dir`` (default: the user's data
        directory), a file path, ``sqlite:///path``, or ``postgres[ql]://…``.
        ``create_own`` (shared mode): create agent-relay's own tables (never the remote
        API's) when they are missing; without it they are used only if present.
        Raises InvalidDatabaseUrl, StoreUnavailable or SchemaMismatch.
        """
        try:
            mode = StoreMode(mode)
        except ValueError:
            raise InvalidInput(f"mode must be one of {[m.value for m in StoreMode]}") from None
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("statement_timeout", statement_timeout),
        ):
            if not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise InvalidInput(f"{name} must be within (0, 3600] seconds")
        if not isinstance(pool_size, int) or not 1 <= pool_size <= 1000:
            raise InvalidInput("pool_size must be within 1..1000")
        target = parse_database_url(url, data_dir=data_dir)
        if target.sqlite_path is not None:
            _prepare_sqlite_file(target, mode)
        engine = create_engine(
            target,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
        store = cls(engine, target, mode, clock)
        try:
            if mode is StoreMode.STANDALONE:
                async with store._connect(transaction=True) as conn:
                    await conn.run_sync(migrate)
            else:
                async with store._connect(transaction=False) as conn:
                    await conn.run_sync(check_shared_schema)
                if create_own:
                    try:
                        async with store._connect(transaction=True) as conn:
                            await conn.run_sync(create_own_tables)
                    except sa_exc.DBAPIError as exc:
                        raise SchemaMismatch(
                            "shared mode: cannot create agent-relay's own tables "
                            f"({type(exc.orig).__name__}: {str(exc.orig).strip()}); grant the "
                            "relay's database user CREATE on the schema, or start without "
                            "--create-own-tables"
                        ) from None
                async with store._connect(transaction=False) as conn:
                    store.host_keys_enabled = await conn.run_sync(has_own_tables)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def mode(self) -> StoreMode:
        return self._mode

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._target.backend

    @property
    def display_url(self) -> str:
        """The database URL without its password, for logs."""
        return self._target.display

    async def health(self, timeout: float = 5.0) -> bool:
        """Whether the database answers a trivial query within ``timeout`` seconds.
        Never raises."""
        return await self.health_problem(timeout) is None

    async def health_problem(self, timeout: float = 5.0) -> str | None:
        """None when the database answers a trivial query within ``timeout`` seconds,
        else why not (for the log). Never raises."""
        try:
            async with asyncio.timeout(timeout):
                async with self._connect(transaction=False) as conn:
                    await conn.execute(text("SELECT 1"))
        except TimeoutError:
            return f"database {self.display_url}: no answer within {timeout:g} s"
        except Exception as exc:  # a health probe reports, it does not fail
            return str(exc) or type(exc).__name__
        return None

    # -- auth sessions (read in both modes) --------------------------------------------

    async def get_auth_session(self, session_id: UUID) -> AuthSessionRecord | None:
        check.uuid(session_id, "session_id")
        stmt = select(*_AUTH_SESSION_COLUMNS).where(auth_sessions.c.id == session_id)
        async with self._connect(transaction=False) as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return _auth_session(row._mapping, "") if row is not None else None

    async def auth_sessions_revoked_since(self, since: datetime) -> list[UUID]:
        """Ids of auth sessions revoked at or after ``since`` (the relay polls this once
        a second to cut what a revoked login has open)."""
        since = check.aware_datetime(since, "since")
        stmt = select(auth_sessions.c.id).where(auth_sessions.c.revoked_at >= since)
        async with self._connect(transaction=False) as conn:
            return [UUID(str(value)) for value in (await conn.execute(stmt)).scalars()]

    async def touch_auth_session(self, session_id: UUID) -> bool:
        """Stand-alone: sets ``last_used_at`` to now (it drives the 365-day idle check).
        Shared mode: does nothing and returns False (the remote API keeps that column)."""
        check.uuid(session_id, "session_id")
        if self._mode is StoreMode.SHARED:
            return False
        stmt = (
            update(auth_sessions)
            .where(auth_sessions.c.id == session_id)
            .values(last_used_at=self._now())
        )
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(stmt)).rowcount > 0

    # -- hosts --------------------------------------------------------------------------

    async def upsert_host(
        self,
        owner_user_id: UUID,
        machine_id: str,
        name: str,
        agent_version: str | None = None,
    ) -> UUID:
        """Creates the host ``(owner_user_id, machine_id)`` or updates its name and agent
        version; returns its id. The status is left alone (see set_host_status)."""
        check.uuid(owner_user_id, "owner_user_id")
        machine_id = check.text(machine_id, "machine_id", check.MAX_MACHINE_ID_LENGTH)
        name = check.text(name, "name", check.MAX_HOST_NAME_LENGTH)
        agent_version = check.optional_text(
            agent_version, "agent_version", check.MAX_AGENT_VERSION_LENGTH
        )
        now = self._now()
        insert = self._dialect_insert(hosts).values(
            id=uuid4(),
            owner_user_id=owner_user_id,
            machine_id=machine_id,
            name=name,
            agent_version=agent_version,
            status=HostStatus.OFFLINE.value,
            created_at=now,
            updated_at=now,
        )
        stmt = insert.on_conflict_do_update(
            index_elements=[hosts.c.owner_user_id, hosts.c.machine_id],
            set_={
                "name": insert.excluded.name,
                "agent_version": insert.excluded.agent_version,
                "updated_at": insert.excluded.updated_at,
            },
        ).returning(hosts.c.id)
        try:
            async with self._connect(transaction=False) as conn:
                return UUID(str((await conn.execute(stmt)).scalar_one()))
        except sa_exc.IntegrityError:
            raise NotFound(f"user {owner_user_id} does not exist") from None

    async def set_host_status(self, host_id: UUID, status: HostStatus | str) -> bool:
        """Sets the status and ``last_seen_at`` = now; False if there is no such host."""
        check.uuid(host_id, "host_id")
        status = _host_status(status)
        now = self._now()
        stmt = (
            update(hosts)
            .where(hosts.c.id == host_id)
            .values(status=status.value, last_seen_at=now, updated_at=now)
        )
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def mark_all_hosts_offline(self, *, last_seen_before: datetime | None = None) -> int:
        """At start: hosts marked online by an earlier run of the relay are not connected.
        With ``last_seen_before``, only hosts not seen since then (for relays that share
        one database and refresh ``last_seen_at`` of their live hosts). Returns the count.
        """
        condition = hosts.c.status == HostStatus.ONLINE.value
        if last_seen_before is not None:
            cutoff = check.aware_datetime(last_seen_before, "last_seen_before")
            condition = and_(
                condition,
                or_(hosts.c.last_seen_at.is_(None), hosts.c.last_seen_at < cutoff),
            )
        stmt = (
            update(hosts)
            .where(condition)
            .values(status=HostStatus.OFFLINE.value, updated_at=self._now())
        )
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(stmt)).rowcount

    async def touch_hosts(self, host_ids: Iterable[UUID]) -> int:
        """Sets ``last_seen_at`` = now for the given hosts (the live tunnels, refreshed
        periodically in one call). Returns how many exist."""
        ids = sorted(set(check.uuids(host_ids, "host_ids")))
        if not ids:
            return 0
        now = self._now()
        touched = 0
        async with self._connect(transaction=False) as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                stmt = update(hosts).where(hosts.c.id.in_(chunk)).values(last_seen_at=now)
                touched += (await conn.execute(stmt)).rowcount
        return touched

    async def set_hosts_status(self, host_ids: Iterable[UUID], status: HostStatus | str) -> int:
        """Sets the status (and ``last_seen_at`` = now) of many hosts in one round trip per
        chunk: the relay's batched status writes. Returns how many exist."""
        ids = sorted(set(check.uuids(host_ids, "host_ids")))
        status = _host_status(status)
        if not ids:
            return 0
        now = self._now()
        written = 0
        async with self._connect(transaction=False) as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                stmt = (
                    update(hosts)
                    .where(hosts.c.id.in_(ids[start : start + _IN_CHUNK]))
                    .values(status=status.value, last_seen_at=now, updated_at=now)
                )
                written += (await conn.execute(stmt)).rowcount
        return written

    async def reconcile_host_statuses(
        self, live_host_ids: Iterable[UUID], *, stale_after: float = 0.0
    ) -> int:
        """Makes the statuses equal the live tunnels, in one transaction: the live hosts
        get 'online' and ``last_seen_at`` = now; every other host marked online and not
        seen for ``stale_after`` seconds gets 'offline' (relays sharing one database pass
        a few refresh periods, so that each keeps the others' hosts). Returns how many
        hosts were turned offline."""
        ids = sorted(set(check.uuids(live_host_ids, "live_host_ids")))
        if not 0 <= stale_after < 1e9:
            raise InvalidInput("stale_after must be a non-negative number of seconds")
        now = self._now()
        cutoff = now - timedelta(seconds=stale_after)
        online = HostStatus.ONLINE.value
        async with self._connect(transaction=True) as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                await conn.execute(
                    update(hosts).where(hosts.c.id.in_(chunk)).values(last_seen_at=now)
                )
                await conn.execute(
                    update(hosts)
                    .where(hosts.c.id.in_(chunk), hosts.c.status != online)
                    .values(status=online, updated_at=now)
                )
            stale = update(hosts).where(
                hosts.c.status == online,
                or_(hosts.c.last_seen_at.is_(None), hosts.c.last_seen_at < cutoff),
            )
            result = await conn.execute(
                stale.values(status=HostStatus.OFFLINE.value, updated_at=now)
            )
        return int(result.rowcount)

    async def count_hosts_of_user(self, user_id: UUID, *, other_than: str) -> int:
        """How many hosts the user owns besides the one with machine id ``other_than``
        (the per-user host cap: reconnecting an existing host is never refused)."""
        check.uuid(user_id, "user_id")
        stmt = (
            select(func.count())
            .select_from(hosts)
            .where(hosts.c.owner_user_id == user_id, hosts.c.machine_id != other_than)
        )
        async with self._connect(transaction=False) as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def count_live_browser_sessions(self, user_id: UUID, used_since: datetime) -> int:
        """The user's relay sessions that are not revoked and were used (or made) at or
        after ``used_since`` (the per-user session cap; idle ones do not count)."""
        check.uuid(user_id, "user_id")
        used_since = check.aware_datetime(used_since, "used_since")
        s = relay_browser_sessions
        stmt = (
            select(func.count())
            .select_from(s)
            .where(
                s.c.user_id == user_id,
                s.c.revoked_at.is_(None),
                func.coalesce(s.c.last_used_at, s.c.created_at) >= used_since,
            )
        )
        async with self._connect(transaction=False) as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def list_hosts_for_user(self, user_id: UUID) -> list[HostRecord]:
        """The user's own hosts and those shared with an organization they belong to,
        by name."""
        check.uuid(user_id, "user_id")
        member_of = select(organization_member_metadata.c.organization_id).where(
            organization_member_metadata.c.user_id == user_id
        )
        stmt = (
            select(hosts, (hosts.c.owner_user_id == user_id).label("owned"))
            .where(
                or_(
                    hosts.c.owner_user_id == user_id,
                    hosts.c.shared_with_organization_id.in_(member_of),
                )
            )
            .order_by(hosts.c.name, hosts.c.id)
        )
        async with self._connect(transaction=False) as conn:
            rows = (await conn.execute(stmt)).all()
        return [_host(row._mapping) for row in rows]

    async def get_host(self, host_id: UUID) -> HostRecord | None:
        """One host, whoever owns it (``owned`` is then always True)."""
        check.uuid(host_id, "host_id")
        stmt = select(hosts, literal(True).label("owned")).where(hosts.c.id == host_id)
        async with self._connect(transaction=False) as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return _host(row._mapping) if row is not None else None

    async def find_host_id(self, owner_user_id: UUID, machine_id: str) -> UUID | None:
        """The id of the host ``(owner_user_id, machine_id)``, if it was ever registered."""
        check.uuid(owner_user_id, "owner_user_id")
        machine_id = check.text(machine_id, "machine_id", check.MAX_MACHINE_ID_LENGTH)
        stmt = select(hosts.c.id).where(
            hosts.c.owner_user_id == owner_user_id, hosts.c.machine_id == machine_id
        )
        async with self._connect(transaction=False) as conn:
            found = (await conn.execute(stmt)).scalar_one_or_none()
        return UUID(str(found)) if found is not None else None

    async def find_connecting_hosts(
        self, keys: Iterable[tuple[UUID, str]]
    ) -> dict[tuple[UUID, str], ConnectingHost]:
        """The hosts ``(owner_user_id, machine_id)`` that were ever registered, with their
        pinned keys, in one query: the lookup of control-channel connects (a herd of
        them shares it). Keys that match no host are left out."""
        wanted = {
            (
                check.uuid(user, "owner_user_id"),
                check.text(machine, "machine_id", check.MAX_MACHINE_ID_LENGTH),
            )
            for user, machine in keys
        }
        if not wanted:
            return {}
        if len(wanted) > _IN_CHUNK:
            raise InvalidInput(f"at most {_IN_CHUNK} hosts per lookup")
        users_ = sorted({user for user, _ in wanted})
        machines = sorted({machine for _, machine in wanted})
        columns = [hosts.c.id, hosts.c.owner_user_id, hosts.c.machine_id, hosts.c.name]
        columns.append(hosts.c.agent_version)
        if self.host_keys_enabled:
            joined = hosts.outerjoin(host_keys, host_keys.c.host_id == hosts.c.id)
            stmt = select(*columns, host_keys.c.public_key).select_from(joined)
        else:
            stmt = select(*columns, literal(None).label("public_key"))
        stmt = stmt.where(hosts.c.owner_user_id.in_(users_), hosts.c.machine_id.in_(machines))
        async with self._connect(transaction=False) as conn:
            rows = (await conn.execute(stmt)).all()
        found: dict[tuple[UUID, str], ConnectingHost] = {}
        for row in rows:
            key = (UUID(str(row.owner_user_id)), str(row.machine_id))
            if key in wanted:
                pinned = row.public_key
                found[key] = ConnectingHost(
                    id=UUID(str(row.id)),
                    name=str(row.name),
                    agent_version=row.agent_version,
                    pinned_key=str(pinned) if pinned is not None else None,
                )
        return found

    # -- host key pins (hostproof.py) ----------------------------------------------------

    async def pinned_host_key(self, host_id: UUID) -> str | None:
        """The key pinned to the host, or None (none yet, or pins not in this database)."""
        check.uuid(host_id, "host_id")
        if not self.host_keys_enabled:
            return None
        stmt = select(host_keys.c.public_key).where(host_keys.c.host_id == host_id)
        async with self._connect(transaction=False) as conn:
            found = (await conn.execute(stmt)).scalar_one_or_none()
        return str(found) if found is not None else None

    async def pin_host_key(self, host_id: UUID, public_key: str) -> str | None:
        """Pins ``public_key`` unless a key is pinned already; returns the key pinned now
        (the first one wins a race). None when pins are not in this database."""
        check.uuid(host_id, "host_id")
        public_key = check.text(public_key, "public_key", 64)
        if not self.host_keys_enabled:
            return None
        insert = (
            self._dialect_insert(host_keys)
            .values(host_id=host_id, public_key=public_key, pinned_at=self._now())
            .on_conflict_do_nothing(index_elements=[host_keys.c.host_id])
        )
        async with self._connect(transaction=True) as conn:
            await conn.execute(insert)
            found = (
                await conn.execute(
                    select(host_keys.c.public_key).where(host_keys.c.host_id == host_id)
                )
            ).scalar_one()
        return str(found)

    async def reset_host_key(self, host_id: UUID) -> bool:
        """Forgets the host's pinned key: its next proven connect pins a new one."""
        check.uuid(host_id, "host_id")
        if not self.host_keys_enabled:
            raise SharedModeRefused(
                "this database has no agent_relay_host_keys table: no key is pinned here"
            )
        stmt = delete(host_keys).where(host_keys.c.host_id == host_id)
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def can_access_host(self, user_id: UUID, host_id: UUID) -> bool:
        """The user owns the host or belongs to the organization it is shared with."""
        check.uuid(user_id, "user_id")
        check.uuid(host_id, "host_id")
        stmt = select(_has_access(user_id)).where(hosts.c.id == host_id)
        async with self._connect(transaction=False) as conn:
            return bool((await conn.execute(stmt)).scalar_one_or_none())

    # -- relay browser sessions ---------------------------------------------------------

    async def create_browser_session(
        self, host_id: UUID, user_id: UUID, auth_session_id: UUID
    ) -> UUID:
        """Inserts a relay browser session and returns its id, in one statement that
        also checks access. Raises AccessDenied (no such host, or no access) or NotFound
        (the auth session is gone)."""
        check.uuid(host_id, "host_id")
        check.uuid(user_id, "user_id")
        check.uuid(auth_session_id, "auth_session_id")
        allowed = select(
            literal(uuid4(), Uuid),
            hosts.c.id,
            literal(user_id, Uuid),
            literal(auth_session_id, Uuid),
            literal(self._now(), UtcDateTime),
        ).where(hosts.c.id == host_id, _has_access(user_id))
        stmt = (
            relay_browser_sessions.insert()
            .from_select(["id", "host_id", "user_id", "auth_session_id", "created_at"], allowed)
            .returning(relay_browser_sessions.c.id)
        )
        try:
            async with self._connect(transaction=False) as conn:
                created = (await conn.execute(stmt)).scalar_one_or_none()
        except sa_exc.IntegrityError:
            raise NotFound(f"auth session {auth_session_id} does not exist") from None
        if created is None:
            raise AccessDenied(f"user {user_id} has no access to host {host_id}")
        return UUID(str(created))

    async def revoke_browser_session(self, session_id: UUID) -> bool:
        """True if the session existed and was not revoked yet."""
        check.uuid(session_id, "session_id")
        stmt = (
            update(relay_browser_sessions)
            .where(
                relay_browser_sessions.c.id == session_id,
                relay_browser_sessions.c.revoked_at.is_(None),
            )
            .values(revoked_at=self._now())
        )
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def touch_browser_session(self, session_id: UUID) -> bool:
        """Sets ``last_used_at`` = now. Not on the hot path: call it when the loaded
        context's ``last_used_at`` is older than you care to track."""
        check.uuid(session_id, "session_id")
        stmt = (
            update(relay_browser_sessions)
            .where(relay_browser_sessions.c.id == session_id)
            .values(last_used_at=self._now())
        )
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def load_proxy_context(self, session_id: UUID) -> ProxyContext | None:
        """The proxy's one query per request: the browser session, its auth session and
        whether its user still has access to its host. None if there is no such session."""
        check.uuid(session_id, "session_id")
        s = relay_browser_sessions
        stmt = (
            select(
                s.c.id,
                s.c.host_id,
                s.c.user_id,
                s.c.created_at,
                s.c.last_used_at,
                s.c.revoked_at,
                *(column.label(f"auth_{column.name}") for column in _AUTH_SESSION_COLUMNS),
                _has_access(s.c.user_id).label("user_has_access"),
            )
            .select_from(
                s.join(hosts, hosts.c.id == s.c.host_id).outerjoin(
                    auth_sessions, auth_sessions.c.id == s.c.auth_session_id
                )
            )
            .where(s.c.id == session_id)
        )
        async with self._connect(transaction=False) as conn:
            row = (await conn.execute(stmt)).one_or_none()
        if row is None:
            return None
        return ProxyContext(
            browser_session_id=row.id,
            host_id=row.host_id,
            user_id=row.user_id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            auth_session=_auth_session(row._mapping, "auth_") if row.auth_id is not None else None,
            user_has_access=bool(row.user_has_access),
        )

    # -- stand-alone administration -----------------------------------------------------

    async def add_user(self, username: str) -> UserRecord:
        """Raises AlreadyExists if the name is taken."""
        self._require_standalone("add users")
        username = check.username(username)
        now = self._now()
        record = UserRecord(id=uuid4(), username=username, created_at=now)
        stmt = users.insert().values(
            id=record.id, username=username, created_at=now, updated_at=now
        )
        try:
            async with self._connect(transaction=False) as conn:
                await conn.execute(stmt)
        except sa_exc.IntegrityError:
            raise AlreadyExists(f"user {username!r} exists already") from None
        return record

    async def get_user(self, username: str) -> UserRecord | None:
        self._require_standalone("look users up by name")
        username = check.username(username)
        stmt = select(users.c.id, users.c.username, users.c.created_at).where(
            users.c.username == username
        )
        async with self._connect(transaction=False) as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return UserRecord(row.id, row.username, row.created_at) if row is not None else None

    async def list_users(self) -> list[UserRecord]:
        self._require_standalone("list users")
        stmt = select(users.c.id, users.c.username, users.c.created_at).order_by(users.c.username)
        async with self._connect(transaction=False) as conn:
            rows = (await conn.execute(stmt)).all()
        return [UserRecord(row.id, row.username, row.created_at) for row in rows]

    async def issue_auth_session(self, user_id: UUID) -> AuthSessionRecord:
        """A new auth session for the user (mint its JWT with relay.auth.mint_token).
        Raises NotFound if there is no such user."""
        self._require_standalone("issue auth sessions")
        check.uuid(user_id, "user_id")
        record = AuthSessionRecord(
            id=uuid4(), user_id=user_id, created_at=self._now(), last_used_at=None, revoked_at=None
        )
        source = select(
            literal(record.id, Uuid), users.c.id, literal(record.created_at, UtcDateTime)
        ).where(users.c.id == user_id)
        stmt = (
            auth_sessions.insert()
            .from_select(["id", "user_id", "created_at"], source)
            .returning(auth_sessions.c.id)
        )
        async with self._connect(transaction=False) as conn:
            if (await conn.execute(stmt)).scalar_one_or_none() is None:
                raise NotFound(f"user {user_id} does not exist")
        return record

    async def revoke_auth_session(self, session_id: UUID) -> bool:
        """Revokes the auth session and its relay browser sessions. True if it was live.
        (The relay revokes browser sessions lazily too; doing it here makes the revoke
        visible at once to every check, including a cached one.)"""
        self._require_standalone("revoke auth sessions")
        check.uuid(session_id, "session_id")
        return bool(await self._revoke_auth_sessions(auth_sessions.c.id == session_id))

    async def revoke_user_auth_sessions(self, user_id: UUID) -> list[UUID]:
        """Revokes every live auth session of the user (and their browser sessions);
        returns their ids."""
        self._require_standalone("revoke auth sessions")
        check.uuid(user_id, "user_id")
        return await self._revoke_auth_sessions(auth_sessions.c.user_id == user_id)

    async def _revoke_auth_sessions(self, which: ColumnElement[bool]) -> list[UUID]:
        now = self._now()
        revoke = (
            update(auth_sessions)
            .where(which, auth_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(auth_sessions.c.id)
        )
        async with self._connect(transaction=True) as conn:
            revoked = [UUID(str(value)) for value in (await conn.execute(revoke)).scalars()]
            for start in range(0, len(revoked), _IN_CHUNK):
                await conn.execute(
                    update(relay_browser_sessions)
                    .where(
                        relay_browser_sessions.c.auth_session_id.in_(
                            revoked[start : start + _IN_CHUNK]
                        ),
                        relay_browser_sessions.c.revoked_at.is_(None),
                    )
                    .values(revoked_at=now)
                )
        return revoked

    async def add_organization(self, name: str) -> UUID:
        self._require_standalone("add organizations")
        name = check.text(name, "name", check.MAX_ORGANIZATION_NAME_LENGTH)
        now = self._now()
        organization_id = uuid4()
        stmt = organizations.insert().values(
            id=organization_id, name=name, created_at=now, updated_at=now
        )
        async with self._connect(transaction=False) as conn:
            await conn.execute(stmt)
        return organization_id

    async def add_organization_member(self, organization_id: UUID, user_id: UUID) -> bool:
        """True if added, False if the user was a member already. Raises NotFound."""
        self._require_standalone("change organization members")
        check.uuid(organization_id, "organization_id")
        check.uuid(user_id, "user_id")
        stmt = (
            self._dialect_insert(organization_member_metadata)
            .values(organization_id=organization_id, user_id=user_id, joined_at=self._now())
            .on_conflict_do_nothing()
        )
        try:
            async with self._connect(transaction=False) as conn:
                return (await conn.execute(stmt)).rowcount > 0
        except sa_exc.IntegrityError:
            raise NotFound(
                f"organization {organization_id} or user {user_id} does not exist"
            ) from None

    async def remove_organization_member(self, organization_id: UUID, user_id: UUID) -> bool:
        self._require_standalone("change organization members")
        check.uuid(organization_id, "organization_id")
        check.uuid(user_id, "user_id")
        m = organization_member_metadata
        stmt = m.delete().where(m.c.organization_id == organization_id, m.c.user_id == user_id)
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def share_host(self, host_id: UUID, organization_id: UUID | None) -> bool:
        """Shares the host with an organization (None: with nobody). False if no such
        host; NotFound if no such organization."""
        self._require_standalone("share hosts")
        check.uuid(host_id, "host_id")
        if organization_id is not None:
            check.uuid(organization_id, "organization_id")
        stmt = (
            update(hosts)
            .where(hosts.c.id == host_id)
            .values(shared_with_organization_id=organization_id, updated_at=self._now())
        )
        try:
            async with self._connect(transaction=False) as conn:
                return (await conn.execute(stmt)).rowcount > 0
        except sa_exc.IntegrityError:
            raise NotFound(f"organization {organization_id} does not exist") from None

    async def remove_user(self, user_id: UUID) -> bool:
        """Deletes the user with their auth sessions, hosts and browser sessions (the
        schema's ON DELETE CASCADE). False if there was no such user."""
        self._require_standalone("remove users")
        check.uuid(user_id, "user_id")
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(users.delete().where(users.c.id == user_id))).rowcount > 0

    async def list_auth_sessions(self, user_id: UUID | None = None) -> list[AuthSessionRecord]:
        """Every auth session (one per issued token), or one user's, oldest first."""
        self._require_standalone("list auth sessions")
        stmt = select(*_AUTH_SESSION_COLUMNS).order_by(
            auth_sessions.c.created_at, auth_sessions.c.id
        )
        if user_id is not None:
            stmt = stmt.where(auth_sessions.c.user_id == check.uuid(user_id, "user_id"))
        async with self._connect(transaction=False) as conn:
            rows = (await conn.execute(stmt)).all()
        return [_auth_session(row._mapping, "") for row in rows]

    async def list_all_hosts(self) -> list[HostRecord]:
        """Every host of every user, by name (``owned`` is always True)."""
        self._require_standalone("list every host")
        stmt = select(hosts, literal(True).label("owned")).order_by(hosts.c.name, hosts.c.id)
        async with self._connect(transaction=False) as conn:
            rows = (await conn.execute(stmt)).all()
        return [_host(row._mapping) for row in rows]

    async def remove_host(self, host_id: UUID) -> bool:
        """Deletes the host and its browser sessions. False if there was no such host. A
        connector that connects again registers it anew (with a new id)."""
        self._require_standalone("remove hosts")
        check.uuid(host_id, "host_id")
        async with self._connect(transaction=False) as conn:
            return (await conn.execute(hosts.delete().where(hosts.c.id == host_id))).rowcount > 0

    # -- plumbing -----------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.utcoffset() is None:
            raise InvalidInput("the store's clock must return timezone-aware datetimes")
        return now

    def _require_standalone(self, what: str) -> None:
        if self._mode is not StoreMode.STANDALONE:
            raise SharedModeRefused(
                f"cannot {what} in shared mode: the remote API owns users and auth sessions"
            )

    def _dialect_insert(self, table: Any) -> Any:
        # ON CONFLICT exists on both backends, with the same spelling, under two classes.
        # Imported here: a relay loads only its own backend's dialect.
        if self._target.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            return postgresql_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    @contextlib.asynccontextmanager
    async def _connect(self, *, transaction: bool) -> AsyncIterator[AsyncConnection]:
        """A pooled connection. ``transaction=False``: each statement commits on its own
        (PostgreSQL: AUTOCOMMIT, so no BEGIN/COMMIT round trips; SQLite: no BEGIN).
        ``transaction=True``: one transaction, committed at the end (SQLite: BEGIN
        IMMEDIATE, so it waits for the write lock rather than failing midway)."""
        with _unavailable_on_connection_errors(self._target.display):
            async with self._engine.connect() as conn:
                if self._target.backend == "sqlite":
                    if transaction:
                        await conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
                elif not transaction:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                if transaction:
                    async with conn.begin():
                        yield conn
                else:
                    yield conn


@contextlib.contextmanager
def _unavailable_on_connection_errors(display: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated or isinstance(
            exc, (sa_exc.OperationalError, sa_exc.InterfaceError)
        ):
            raise StoreUnavailable(f"database {display}: {exc.orig}") from exc
        raise
    except (sa_exc.DisconnectionError, sa_exc.TimeoutError, OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"database {display}: {exc}") from exc


def _prepare_sqlite_file(target: DatabaseTarget, mode: StoreMode) -> None:
    assert target.sqlite_path is not None
    if mode is StoreMode.SHARED:
        if not target.sqlite_path.is_file():
            raise StoreUnavailable(f"shared mode: {target.display} does not exist")
        return
    try:
        # The database holds auth sessions: keep the directory private.
        target.sqlite_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the directory of {target.display}: {exc}") from exc
    # It holds session ids, which are credentials: 0600 also when the directory existed
    # already. SQLite gives its -wal and -shm files the main file's mode.
    path = target.sqlite_path
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        for name in (path.name, path.name + "-wal", path.name + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(path.with_name(name), 0o600)
    except OSError as exc:
        raise StoreUnavailable(f"cannot make {target.display} private: {exc}") from exc


def _has_access(user_id: UUID | ColumnElement[Any]) -> ColumnElement[bool]:
    """The user (a value or a column) owns the host in the query, or is a member of the
    organization it is shared with."""
    m = organization_member_metadata
    return or_(
        hosts.c.owner_user_id == user_id,
        exists().where(
            m.c.organization_id == hosts.c.shared_with_organization_id,
            m.c.user_id == user_id,
        ),
    )


_AUTH_SESSION_COLUMNS = (
    auth_sessions.c.id,
    auth_sessions.c.user_id,
    auth_sessions.c.created_at,
    auth_sessions.c.last_used_at,
    auth_sessions.c.revoked_at,
)


def _auth_session(values: RowMapping, prefix: str) -> AuthSessionRecord:
    return AuthSessionRecord(
        id=values[f"{prefix}id"],
        user_id=values[f"{prefix}user_id"],
        created_at=values[f"{prefix}created_at"],
        last_used_at=values[f"{prefix}last_used_at"],
        revoked_at=values[f"{prefix}revoked_at"],
    )


def _host(row: RowMapping) -> HostRecord:
    return HostRecord(
        id=row["id"],
        owner_user_id=row["owner_user_id"],
        shared_with_organization_id=row["shared_with_organization_id"],
        machine_id=row["machine_id"],
        name=row["name"],
        status=HostStatus(row["status"]),
        last_seen_at=row["last_seen_at"],
        agent_version=row["agent_version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        owned=bool(row["owned"]),
    )


def _host_status(value: object) -> HostStatus:
    try:
        return HostStatus(value)  # type: ignore[arg-type]  # anything else is refused
    except ValueError:
        raise InvalidInput("status must be 'online' or 'offline'") from None

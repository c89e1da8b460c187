"""The relay's database: one async API over SQLite (stand-alone) or PostgreSQL.

Two modes. Stand-alone: agent-relay owns the database, creates and migrates every table,
and the admin methods (users, auth sessions, organizations) work. Shared: the database
belongs to VibeKanban's remote API; the relay reads ``users``, ``auth_sessions`` and
``organization_member_metadata``, writes only ``hosts`` and ``relay_browser_sessions``,
and never runs DDL.

Statements that stand alone run in autocommit (on PostgreSQL: one round trip each, no
BEGIN/COMMIT); the few multi-statement writes run in a transaction.
"""

# ruff: noqa: S608 - SQL text from constants; every value goes as a parameter
from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self
from uuid import UUID, uuid4

from . import schema
from . import validation as check
from .errors import (
    AccessDenied,
    AlreadyExists,
    ConstraintViolation,
    DatabaseError,
    InvalidInput,
    NotFound,
    SchemaMismatch,
    SharedModeRefused,
    StoreUnavailable,
)
from .migrations import check_shared_schema, create_own_tables, has_own_tables, migrate
from .pool import Connection, Database, Row, open_database
from .records import (
    AuthSessionRecord,
    ConnectingHost,
    HostRecord,
    HostStatus,
    ProxyContext,
    UserRecord,
)
from .sql import insert
from .url import DatabaseTarget, parse_database_url
from .values import Kind

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
        database: Database,
        target: DatabaseTarget,
        mode: StoreMode,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
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
        database = open_database(
            target,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
        store = cls(database, target, mode, clock)
        try:
            if mode is StoreMode.STANDALONE:
                async with store._connect(transaction=True) as conn:
                    await migrate(conn)
            else:
                async with store._connect(transaction=False) as conn:
                    await check_shared_schema(conn)
                if create_own:
                    try:
                        async with store._connect(transaction=True) as conn:
                            await create_own_tables(conn)
                    except DatabaseError as exc:
                        raise SchemaMismatch(
                            f"shared mode: cannot create agent-relay's own tables ({exc}); "
                            "grant the relay's database user CREATE on the schema, or start "
                            "without --create-own-tables"
                        ) from None
                async with store._connect(transaction=False) as conn:
                    store.host_keys_enabled = await has_own_tables(conn)
        except BaseException:
            await database.close()
            raise
        return store

    async def close(self) -> None:
        await self._database.close()

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
                    await conn.fetchval("SELECT 1")
        except TimeoutError:
            return f"database {self.display_url}: no answer within {timeout:g} s"
        except Exception as exc:  # a health probe reports, it does not fail
            return str(exc) or type(exc).__name__
        return None

    # -- auth sessions (read in both modes) --------------------------------------------

    async def get_auth_session(self, session_id: UUID) -> AuthSessionRecord | None:
        check.uuid(session_id, "session_id")
        async with self._connect(transaction=False) as conn:
            row = await conn.fetchrow(
                f"SELECT {_AUTH_SESSION_COLUMNS} FROM auth_sessions WHERE id = :id",
                {"id": session_id},
                _KINDS,
            )
        return _auth_session(row, "") if row is not None else None

    async def auth_sessions_revoked_since(self, since: datetime) -> list[UUID]:
        """Ids of auth sessions revoked at or after ``since`` (the relay polls this once
        a second to cut what a revoked login has open)."""
        since = check.aware_datetime(since, "since")
        async with self._connect(transaction=False) as conn:
            rows = await conn.fetch(
                "SELECT id FROM auth_sessions WHERE revoked_at >= :since",
                {"since": since},
                _KINDS,
            )
        return [row["id"] for row in rows]

    async def touch_auth_session(self, session_id: UUID) -> bool:
        """Stand-alone: sets ``last_used_at`` to now (it drives the 365-day idle check).
        Shared mode: does nothing and returns False (the remote API keeps that column)."""
        check.uuid(session_id, "session_id")
        if self._mode is StoreMode.SHARED:
            return False
        async with self._connect(transaction=False) as conn:
            changed = await conn.execute(
                "UPDATE auth_sessions SET last_used_at = :now WHERE id = :id",
                {"now": self._now(), "id": session_id},
            )
        return changed > 0

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
        values = {
            "id": uuid4(),
            "owner_user_id": owner_user_id,
            "machine_id": machine_id,
            "name": name,
            "agent_version": agent_version,
            "status": HostStatus.OFFLINE,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._connect(transaction=False) as conn:
                found = await conn.fetchval(_UPSERT_HOST, values, Kind.UUID)
        except ConstraintViolation:
            raise NotFound(f"user {owner_user_id} does not exist") from None
        assert isinstance(found, UUID)
        return found

    async def set_host_status(self, host_id: UUID, status: HostStatus | str) -> bool:
        """Sets the status and ``last_seen_at`` = now; False if there is no such host."""
        check.uuid(host_id, "host_id")
        status = _host_status(status)
        async with self._connect(transaction=False) as conn:
            changed = await conn.execute(
                "UPDATE hosts SET status = :status, last_seen_at = :now, updated_at = :now "
                "WHERE id = :id",
                {"status": status, "now": self._now(), "id": host_id},
            )
        return changed > 0

    async def mark_all_hosts_offline(self, *, last_seen_before: datetime | None = None) -> int:
        """At start: hosts marked online by an earlier run of the relay are not connected.
        With ``last_seen_before``, only hosts not seen since then (for relays that share
        one database and refresh ``last_seen_at`` of their live hosts). Returns the count.
        """
        sql = "UPDATE hosts SET status = :offline, updated_at = :now WHERE status = :online"
        params: dict[str, object] = {
            "offline": HostStatus.OFFLINE,
            "online": HostStatus.ONLINE,
            "now": self._now(),
        }
        if last_seen_before is not None:
            params["cutoff"] = check.aware_datetime(last_seen_before, "last_seen_before")
            sql += " AND (last_seen_at IS NULL OR last_seen_at < :cutoff)"
        async with self._connect(transaction=False) as conn:
            return await conn.execute(sql, params)

    async def touch_hosts(self, host_ids: Iterable[UUID]) -> int:
        """Sets ``last_seen_at`` = now for the given hosts (the live tunnels, refreshed
        periodically in one call). Returns how many exist."""
        ids = sorted(set(check.uuids(host_ids, "host_ids")))
        if not ids:
            return 0
        now = self._now()
        touched = 0
        async with self._connect(transaction=False) as conn:
            for chunk in _chunks(ids):
                touched += await conn.execute(
                    "UPDATE hosts SET last_seen_at = :now WHERE id IN (:ids)",
                    {"now": now, "ids": chunk},
                )
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
            for chunk in _chunks(ids):
                written += await conn.execute(
                    "UPDATE hosts SET status = :status, last_seen_at = :now, updated_at = :now "
                    "WHERE id IN (:ids)",
                    {"status": status, "now": now, "ids": chunk},
                )
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
        online = HostStatus.ONLINE
        async with self._connect(transaction=True) as conn:
            for chunk in _chunks(ids):
                await conn.execute(
                    "UPDATE hosts SET last_seen_at = :now WHERE id IN (:ids)",
                    {"now": now, "ids": chunk},
                )
                await conn.execute(
                    "UPDATE hosts SET status = :online, updated_at = :now "
                    "WHERE id IN (:ids) AND status != :online",
                    {"online": online, "now": now, "ids": chunk},
                )
            return await conn.execute(
                "UPDATE hosts SET status = :offline, updated_at = :now WHERE status = :online "
                "AND (last_seen_at IS NULL OR last_seen_at < :cutoff)",
                {"offline": HostStatus.OFFLINE, "online": online, "now": now, "cutoff": cutoff},
            )

    async def count_hosts_of_user(self, user_id: UUID, *, other_than: str) -> int:
        """How many hosts the user owns besides the one with machine id ``other_than``
        (the per-user host cap: reconnecting an existing host is never refused)."""
        check.uuid(user_id, "user_id")
        async with self._connect(transaction=False) as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM hosts WHERE owner_user_id = :user "
                "AND machine_id != :other_than",
                {"user": user_id, "other_than": other_than},
            )
        return int(count)

    async def count_live_browser_sessions(self, user_id: UUID, used_since: datetime) -> int:
        """The user's relay sessions that are not revoked and were used (or made) at or
        after ``used_since`` (the per-user session cap; idle ones do not count)."""
        check.uuid(user_id, "user_id")
        used_since = check.aware_datetime(used_since, "used_since")
        async with self._connect(transaction=False) as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM relay_browser_sessions WHERE user_id = :user "
                "AND revoked_at IS NULL AND coalesce(last_used_at, created_at) >= :since",
                {"user": user_id, "since": used_since},
            )
        return int(count)

    async def list_hosts_for_user(self, user_id: UUID) -> list[HostRecord]:
        """The user's own hosts and those shared with an organization they belong to,
        by name."""
        check.uuid(user_id, "user_id")
        async with self._connect(transaction=False) as conn:
            rows = await conn.fetch(
                f"SELECT {_HOST_COLUMNS}, hosts.owner_user_id = :user AS owned FROM hosts "
                "WHERE hosts.owner_user_id = :user OR hosts.shared_with_organization_id IN "
                "(SELECT organization_id FROM organization_member_metadata "
                "WHERE user_id = :user) "
                "ORDER BY hosts.name, hosts.id",
                {"user": user_id},
                _KINDS,
            )
        return [_host(row) for row in rows]

    async def get_host(self, host_id: UUID) -> HostRecord | None:
        """One host, whoever owns it (``owned`` is then always True)."""
        check.uuid(host_id, "host_id")
        async with self._connect(transaction=False) as conn:
            row = await conn.fetchrow(
                f"SELECT {_HOST_COLUMNS}, 1 AS owned FROM hosts WHERE hosts.id = :id",
                {"id": host_id},
                _KINDS,
            )
        return _host(row) if row is not None else None

    async def find_host_id(self, owner_user_id: UUID, machine_id: str) -> UUID | None:
        """The id of the host ``(owner_user_id, machine_id)``, if it was ever registered."""
        check.uuid(owner_user_id, "owner_user_id")
        machine_id = check.text(machine_id, "machine_id", check.MAX_MACHINE_ID_LENGTH)
        async with self._connect(transaction=False) as conn:
            found = await conn.fetchval(
                "SELECT id FROM hosts WHERE owner_user_id = :owner AND machine_id = :machine",
                {"owner": owner_user_id, "machine": machine_id},
                Kind.UUID,
            )
        return found if isinstance(found, UUID) else None

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
        columns = "hosts.id, hosts.owner_user_id, hosts.machine_id, hosts.name, "
        columns += "hosts.agent_version"
        if self.host_keys_enabled:
            source = (
                f"SELECT {columns}, agent_relay_host_keys.public_key FROM hosts "
                "LEFT OUTER JOIN agent_relay_host_keys "
                "ON agent_relay_host_keys.host_id = hosts.id"
            )
        else:
            source = f"SELECT {columns}, NULL AS public_key FROM hosts"
        async with self._connect(transaction=False) as conn:
            rows = await conn.fetch(
                f"{source} WHERE hosts.owner_user_id IN (:users) "
                "AND hosts.machine_id IN (:machines)",
                {
                    "users": sorted({user for user, _ in wanted}),
                    "machines": sorted({machine for _, machine in wanted}),
                },
                _KINDS,
            )
        found: dict[tuple[UUID, str], ConnectingHost] = {}
        for row in rows:
            key = (row["owner_user_id"], str(row["machine_id"]))
            if key in wanted:
                pinned = row["public_key"]
                found[key] = ConnectingHost(
                    id=row["id"],
                    name=str(row["name"]),
                    agent_version=row["agent_version"],
                    pinned_key=str(pinned) if pinned is not None else None,
                )
        return found

    # -- host key pins (hostproof.py) ----------------------------------------------------

    async def pinned_host_key(self, host_id: UUID) -> str | None:
        """The key pinned to the host, or None (none yet, or pins not in this database)."""
        check.uuid(host_id, "host_id")
        if not self.host_keys_enabled:
            return None
        async with self._connect(transaction=False) as conn:
            found = await conn.fetchval(_PINNED_KEY, {"host_id": host_id})
        return str(found) if found is not None else None

    async def pin_host_key(self, host_id: UUID, public_key: str) -> str | None:
        """Pins ``public_key`` unless a key is pinned already; returns the key pinned now
        (the first one wins a race). None when pins are not in this database."""
        check.uuid(host_id, "host_id")
        public_key = check.text(public_key, "public_key", 64)
        if not self.host_keys_enabled:
            return None
        values = {"host_id": host_id, "public_key": public_key, "pinned_at": self._now()}
        async with self._connect(transaction=True) as conn:
            await conn.execute(_PIN_KEY, values)
            found = await conn.fetchval(_PINNED_KEY, {"host_id": host_id})
        return str(found)

    async def reset_host_key(self, host_id: UUID) -> bool:
        """Forgets the host's pinned key: its next proven connect pins a new one."""
        check.uuid(host_id, "host_id")
        if not self.host_keys_enabled:
            raise SharedModeRefused(
                "this database has no agent_relay_host_keys table: no key is pinned here"
            )
        async with self._connect(transaction=False) as conn:
            deleted = await conn.execute(
                "DELETE FROM agent_relay_host_keys WHERE host_id = :host_id",
                {"host_id": host_id},
            )
        return deleted > 0

    async def can_access_host(self, user_id: UUID, host_id: UUID) -> bool:
        """The user owns the host or belongs to the organization it is shared with."""
        check.uuid(user_id, "user_id")
        check.uuid(host_id, "host_id")
        async with self._connect(transaction=False) as conn:
            allowed = await conn.fetchval(
                f"SELECT {_has_access(':user')} FROM hosts WHERE hosts.id = :host",
                {"user": user_id, "host": host_id},
            )
        return bool(allowed)

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
        params = {
            "id": uuid4(),
            "host": host_id,
            "user": user_id,
            "auth": auth_session_id,
            "now": self._now(),
        }
        try:
            async with self._connect(transaction=False) as conn:
                created = await conn.fetchval(_CREATE_BROWSER_SESSION, params, Kind.UUID)
        except ConstraintViolation:
            raise NotFound(f"auth session {auth_session_id} does not exist") from None
        if created is None:
            raise AccessDenied(f"user {user_id} has no access to host {host_id}")
        assert isinstance(created, UUID)
        return created

    async def revoke_browser_session(self, session_id: UUID) -> bool:
        """True if the session existed and was not revoked yet."""
        check.uuid(session_id, "session_id")
        async with self._connect(transaction=False) as conn:
            changed = await conn.execute(
                "UPDATE relay_browser_sessions SET revoked_at = :now "
                "WHERE id = :id AND revoked_at IS NULL",
                {"now": self._now(), "id": session_id},
            )
        return changed > 0

    async def touch_browser_session(self, session_id: UUID) -> bool:
        """Sets ``last_used_at`` = now. Not on the hot path: call it when the loaded
        context's ``last_used_at`` is older than you care to track."""
        check.uuid(session_id, "session_id")
        async with self._connect(transaction=False) as conn:
            changed = await conn.execute(
                "UPDATE relay_browser_sessions SET last_used_at = :now WHERE id = :id",
                {"now": self._now(), "id": session_id},
            )
        return changed > 0

    async def load_proxy_context(self, session_id: UUID) -> ProxyContext | None:
        """The proxy's one query per request: the browser session, its auth session and
        whether its user still has access to its host. None if there is no such session."""
        check.uuid(session_id, "session_id")
        async with self._connect(transaction=False) as conn:
            row = await conn.fetchrow(_PROXY_CONTEXT, {"id": session_id}, _KINDS)
        if row is None:
            return None
        return ProxyContext(
            browser_session_id=row["id"],
            host_id=row["host_id"],
            user_id=row["user_id"],
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
            auth_session=_auth_session(row, "auth_") if row["auth_id"] is not None else None,
            user_has_access=bool(row["user_has_access"]),
        )

    # -- stand-alone administration -----------------------------------------------------

    async def add_user(self, username: str) -> UserRecord:
        """Raises AlreadyExists if the name is taken."""
        self._require_standalone("add users")
        username = check.username(username)
        now = self._now()
        record = UserRecord(id=uuid4(), username=username, created_at=now)
        values = {"id": record.id, "username": username, "created_at": now, "updated_at": now}
        try:
            async with self._connect(transaction=False) as conn:
                await conn.execute(insert("users", list(values)), values)
        except ConstraintViolation:
            raise AlreadyExists(f"user {username!r} exists already") from None
        return record

    async def get_user(self, username: str) -> UserRecord | None:
        self._require_standalone("look users up by name")
        username = check.username(username)
        async with self._connect(transaction=False) as conn:
            row = await conn.fetchrow(
                "SELECT id, username, created_at FROM users WHERE username = :username",
                {"username": username},
                _KINDS,
            )
        return UserRecord(row["id"], row["username"], row["created_at"]) if row else None

    async def list_users(self) -> list[UserRecord]:
        self._require_standalone("list users")
        async with self._connect(transaction=False) as conn:
            rows = await conn.fetch(
                "SELECT id, username, created_at FROM users ORDER BY username", None, _KINDS
            )
        return [UserRecord(row["id"], row["username"], row["created_at"]) for row in rows]

    async def issue_auth_session(self, user_id: UUID) -> AuthSessionRecord:
        """A new auth session for the user (mint its JWT with relay.auth.mint_token).
        Raises NotFound if there is no such user."""
        self._require_standalone("issue auth sessions")
        check.uuid(user_id, "user_id")
        record = AuthSessionRecord(
            id=uuid4(), user_id=user_id, created_at=self._now(), last_used_at=None, revoked_at=None
        )
        async with self._connect(transaction=False) as conn:
            created = await conn.fetchval(
                "INSERT INTO auth_sessions (id, user_id, created_at) "
                "SELECT :id::uuid, users.id, :created_at::timestamptz FROM users "
                "WHERE users.id = :user RETURNING id",
                {"id": record.id, "created_at": record.created_at, "user": user_id},
            )
        if created is None:
            raise NotFound(f"user {user_id} does not exist")
        return record

    async def revoke_auth_session(self, session_id: UUID) -> bool:
        """Revokes the auth session and its relay browser sessions. True if it was live.
        (The relay revokes browser sessions lazily too; doing it here makes the revoke
        visible at once to every check, including a cached one.)"""
        self._require_standalone("revoke auth sessions")
        check.uuid(session_id, "session_id")
        return bool(await self._revoke_auth_sessions("id", session_id))

    async def revoke_user_auth_sessions(self, user_id: UUID) -> list[UUID]:
        """Revokes every live auth session of the user (and their browser sessions);
        returns their ids."""
        self._require_standalone("revoke auth sessions")
        check.uuid(user_id, "user_id")
        return await self._revoke_auth_sessions("user_id", user_id)

    async def _revoke_auth_sessions(self, column: str, key: UUID) -> list[UUID]:
        """Revokes the live auth sessions whose ``column`` (a constant) equals ``key``."""
        assert column in ("id", "user_id")
        now = self._now()
        async with self._connect(transaction=True) as conn:
            rows = await conn.fetch(
                f"UPDATE auth_sessions SET revoked_at = :now "
                f"WHERE {column} = :key AND revoked_at IS NULL RETURNING id",
                {"now": now, "key": key},
                _KINDS,
            )
            revoked: list[UUID] = [row["id"] for row in rows]
            for chunk in _chunks(revoked):
                await conn.execute(
                    "UPDATE relay_browser_sessions SET revoked_at = :now "
                    "WHERE auth_session_id IN (:ids) AND revoked_at IS NULL",
                    {"now": now, "ids": chunk},
                )
        return revoked

    async def add_organization(self, name: str) -> UUID:
        self._require_standalone("add organizations")
        name = check.text(name, "name", check.MAX_ORGANIZATION_NAME_LENGTH)
        now = self._now()
        organization_id = uuid4()
        values = {"id": organization_id, "name": name, "created_at": now, "updated_at": now}
        async with self._connect(transaction=False) as conn:
            await conn.execute(insert("organizations", list(values)), values)
        return organization_id

    async def add_organization_member(self, organization_id: UUID, user_id: UUID) -> bool:
        """True if added, False if the user was a member already. Raises NotFound."""
        self._require_standalone("change organization members")
        check.uuid(organization_id, "organization_id")
        check.uuid(user_id, "user_id")
        values = {"organization_id": organization_id, "user_id": user_id, "joined_at": self._now()}
        try:
            async with self._connect(transaction=False) as conn:
                return await conn.execute(_ADD_MEMBER, values) > 0
        except ConstraintViolation:
            raise NotFound(
                f"organization {organization_id} or user {user_id} does not exist"
            ) from None

    async def remove_organization_member(self, organization_id: UUID, user_id: UUID) -> bool:
        self._require_standalone("change organization members")
        check.uuid(organization_id, "organization_id")
        check.uuid(user_id, "user_id")
        async with self._connect(transaction=False) as conn:
            deleted = await conn.execute(
                "DELETE FROM organization_member_metadata "
                "WHERE organization_id = :organization_id AND user_id = :user_id",
                {"organization_id": organization_id, "user_id": user_id},
            )
        return deleted > 0

    async def share_host(self, host_id: UUID, organization_id: UUID | None) -> bool:
        """Shares the host with an organization (None: with nobody). False if no such
        host; NotFound if no such organization."""
        self._require_standalone("share hosts")
        check.uuid(host_id, "host_id")
        if organization_id is not None:
            check.uuid(organization_id, "organization_id")
        try:
            async with self._connect(transaction=False) as conn:
                changed = await conn.execute(
                    "UPDATE hosts SET shared_with_organization_id = :organization_id, "
                    "updated_at = :now WHERE id = :id",
                    {"organization_id": organization_id, "now": self._now(), "id": host_id},
                )
        except ConstraintViolation:
            raise NotFound(f"organization {organization_id} does not exist") from None
        return changed > 0

    async def remove_user(self, user_id: UUID) -> bool:
        """Deletes the user with their auth sessions, hosts and browser sessions (the
        schema's ON DELETE CASCADE). False if there was no such user."""
        self._require_standalone("remove users")
        check.uuid(user_id, "user_id")
        async with self._connect(transaction=False) as conn:
            return await conn.execute("DELETE FROM users WHERE id = :id", {"id": user_id}) > 0

    async def list_auth_sessions(self, user_id: UUID | None = None) -> list[AuthSessionRecord]:
        """Every auth session (one per issued token), or one user's, oldest first."""
        self._require_standalone("list auth sessions")
        sql = f"SELECT {_AUTH_SESSION_COLUMNS} FROM auth_sessions"
        params: dict[str, object] = {}
        if user_id is not None:
            sql += " WHERE user_id = :user_id"
            params["user_id"] = check.uuid(user_id, "user_id")
        async with self._connect(transaction=False) as conn:
            rows = await conn.fetch(sql + " ORDER BY created_at, id", params, _KINDS)
        return [_auth_session(row, "") for row in rows]

    async def list_all_hosts(self) -> list[HostRecord]:
        """Every host of every user, by name (``owned`` is always True)."""
        self._require_standalone("list every host")
        async with self._connect(transaction=False) as conn:
            rows = await conn.fetch(
                f"SELECT {_HOST_COLUMNS}, 1 AS owned FROM hosts ORDER BY hosts.name, hosts.id",
                None,
                _KINDS,
            )
        return [_host(row) for row in rows]

    async def remove_host(self, host_id: UUID) -> bool:
        """Deletes the host and its browser sessions. False if there was no such host. A
        connector that connects again registers it anew (with a new id)."""
        self._require_standalone("remove hosts")
        check.uuid(host_id, "host_id")
        async with self._connect(transaction=False) as conn:
            return await conn.execute("DELETE FROM hosts WHERE id = :id", {"id": host_id}) > 0

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

    def _connect(self, *, transaction: bool) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A pooled connection (pool.py). ``transaction=False``: each statement commits on
        its own. ``transaction=True``: one transaction, committed at the end (SQLite: BEGIN
        IMMEDIATE, so it waits for the write lock rather than failing midway)."""
        return self._database.connect(transaction=transaction)


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


def _chunks(ids: list[UUID]) -> Iterator[list[UUID]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


def _has_access(user: str) -> str:
    """SQL: the user (a placeholder or a column) owns the host in the query, or is a
    member of the organization it is shared with."""
    return (
        f"(hosts.owner_user_id = {user} OR EXISTS (SELECT * FROM organization_member_metadata "
        "WHERE organization_member_metadata.organization_id = hosts.shared_with_organization_id "
        f"AND organization_member_metadata.user_id = {user}))"
    )


_KINDS = schema.KINDS
_HOST_COLUMNS = ", ".join(f"hosts.{column}" for column in schema.HOST_COLUMNS)
_AUTH_SESSION_COLUMNS = ", ".join(schema.AUTH_SESSION_COLUMNS)

_UPSERT_HOST = insert(
    "hosts",
    (
        "id",
        "owner_user_id",
        "machine_id",
        "name",
        "agent_version",
        "status",
        "created_at",
        "updated_at",
    ),
    conflict=("owner_user_id", "machine_id"),
    update=("name", "agent_version", "updated_at"),
    returning=("id",),
)
_PIN_KEY = insert(
    "agent_relay_host_keys", ("host_id", "public_key", "pinned_at"), conflict=("host_id",)
)
_PINNED_KEY = "SELECT public_key FROM agent_relay_host_keys WHERE host_id = :host_id"
_ADD_MEMBER = insert(
    "organization_member_metadata", ("organization_id", "user_id", "joined_at"), conflict=()
)
# The access check is part of the INSERT: no row is inserted without access.
_CREATE_BROWSER_SESSION = (
    "INSERT INTO relay_browser_sessions (id, host_id, user_id, auth_session_id, created_at) "
    "SELECT :id::uuid, hosts.id, :user::uuid, :auth::uuid, :now::timestamptz FROM hosts "
    f"WHERE hosts.id = :host AND {_has_access(':user')} RETURNING id"
)
_PROXY_CONTEXT = (
    "SELECT relay_browser_sessions.id, relay_browser_sessions.host_id, "
    "relay_browser_sessions.user_id, relay_browser_sessions.created_at, "
    "relay_browser_sessions.last_used_at, relay_browser_sessions.revoked_at, "
    + ", ".join(f"auth_sessions.{c} AS auth_{c}" for c in schema.AUTH_SESSION_COLUMNS)
    + f", {_has_access('relay_browser_sessions.user_id')} AS user_has_access "
    "FROM relay_browser_sessions JOIN hosts ON hosts.id = relay_browser_sessions.host_id "
    "LEFT OUTER JOIN auth_sessions ON auth_sessions.id = relay_browser_sessions.auth_session_id "
    "WHERE relay_browser_sessions.id = :id"
)


def _auth_session(row: Row, prefix: str) -> AuthSessionRecord:
    return AuthSessionRecord(
        id=row[f"{prefix}id"],
        user_id=row[f"{prefix}user_id"],
        created_at=row[f"{prefix}created_at"],
        last_used_at=row[f"{prefix}last_used_at"],
        revoked_at=row[f"{prefix}revoked_at"],
    )


def _host(row: Row) -> HostRecord:
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

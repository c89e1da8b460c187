"""Which relay replica holds which host: two tables of the relay's own in PostgreSQL.

Several replicas behind one address share the deployment's database (docs/replicas.md).
Each replica keeps a row in ``agent_relay_replicas`` (its internal address and a heartbeat)
and a row in ``agent_relay_presence`` for each host it holds. Neither table is one of the
remote API's: shared mode creates them (``agent-relay migrate`` or a first start that has
the privilege) and otherwise changes nothing but ``hosts.status``, as it always did.

Every change of who holds a host is one statement that also sets ``hosts.status`` and
sends a ``NOTIFY`` on :data:`CHANNEL`, so the row, the status and the other replicas never
disagree for long: a host that reconnects elsewhere is taken over at once (the old replica
hears the NOTIFY), and a replica that stops heartbeating has its hosts marked offline by
the next sweep of any survivor. Times are the database's ``now()``, never a replica's
clock. SQLite has no place here: a stand-alone SQLite relay is a single replica.
"""

from __future__ import annotations

import contextlib
import enum
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from .errors import SchemaMismatch, StoreUnavailable
from .url import parse_database_url

# The names are spelled out in the SQL below (no string building); these are for messages.
CHANNEL = "agent_relay_presence"
REPLICAS_TABLE = "agent_relay_replicas"
PRESENCE_TABLE = "agent_relay_presence"

SCHEMA_SQL = """
SELECT pg_advisory_xact_lock(7234019911);
CREATE TABLE IF NOT EXISTS agent_relay_replicas (
    replica_id uuid PRIMARY KEY,
    name text NOT NULL,
    address text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS agent_relay_presence_generation;
CREATE TABLE IF NOT EXISTS agent_relay_presence (
    host_id uuid PRIMARY KEY,
    replica_id uuid,
    generation bigint NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);
CREATE INDEX IF NOT EXISTS ix_agent_relay_presence_replica_id
    ON agent_relay_presence (replica_id);
"""

# One statement each (asyncpg prepares them once per connection).
_HOLD = """
WITH held AS (
    INSERT INTO agent_relay_presence (host_id, replica_id, generation)
    VALUES ($1, $2, nextval('agent_relay_presence_generation'))
    ON CONFLICT (host_id) DO UPDATE
        SET replica_id = EXCLUDED.replica_id, generation = EXCLUDED.generation,
            since = now(), released_at = NULL
    RETURNING host_id, generation
), online AS (
    UPDATE hosts SET status = 'online', last_seen_at = now(), updated_at = now()
    WHERE id = $1
)
SELECT generation,
       pg_notify('agent_relay_presence', host_id::text || ' ' || $2::text || ' ' || generation)
FROM held
"""
_RELEASE = """
WITH gone AS (
    UPDATE agent_relay_presence SET replica_id = NULL, released_at = now()
    WHERE host_id = $1 AND replica_id = $2 AND generation = $3
    RETURNING host_id, generation
), offline AS (
    UPDATE hosts SET status = 'offline', last_seen_at = now(), updated_at = now()
    WHERE id IN (SELECT host_id FROM gone)
)
SELECT pg_notify('agent_relay_presence', host_id::text || ' - ' || generation) FROM gone
"""
_RELEASE_ALL = """
WITH gone AS (
    UPDATE agent_relay_presence SET replica_id = NULL, released_at = now()
    WHERE replica_id = $1
    RETURNING host_id, generation
), offline AS (
    UPDATE hosts SET status = 'offline', updated_at = now()
    WHERE id IN (SELECT host_id FROM gone)
)
SELECT pg_notify('agent_relay_presence', host_id::text || ' - ' || generation) FROM gone
"""
# Replicas silent for longer than $1 seconds are gone: their hosts are released and
# marked offline (unless a live replica holds them by now, which moved the row already).
_SWEEP = """
WITH dead AS (
    DELETE FROM agent_relay_replicas
    WHERE heartbeat_at < now() - make_interval(secs => $1) AND replica_id <> $2
    RETURNING replica_id
), gone AS (
    UPDATE agent_relay_presence SET replica_id = NULL, released_at = now()
    WHERE replica_id IN (SELECT replica_id FROM dead)
    RETURNING host_id, generation
), offline AS (
    UPDATE hosts SET status = 'offline', updated_at = now()
    WHERE id IN (SELECT host_id FROM gone)
)
SELECT pg_notify('agent_relay_presence', host_id::text || ' - ' || generation) FROM gone
"""
# The hosts we hold were seen now (hosts.last_seen_at, as a stand-alone relay's reconcile
# keeps it for its live hosts; only ours: each replica refreshes its own).
_SEEN = """
UPDATE hosts SET last_seen_at = now()
WHERE id IN (SELECT host_id FROM agent_relay_presence WHERE replica_id = $1)
"""
# At a replica's start: "online" rows nobody holds (an earlier single relay's, or the
# rows of replicas that vanished with their presence) are not connected anywhere.
_ORPHANS_OFFLINE = """
UPDATE hosts SET status = 'offline', updated_at = now()
WHERE status = 'online' AND id NOT IN (
    SELECT p.host_id FROM agent_relay_presence p JOIN agent_relay_replicas r USING (replica_id)
)
"""
_FORGET_RELEASED = """
DELETE FROM agent_relay_presence
WHERE replica_id IS NULL AND released_at < now() - interval '1 day'
"""
_LOCATE = """
SELECT p.replica_id, p.generation, r.address,
       r.heartbeat_at > now() - make_interval(secs => $2) AS alive,
       p.released_at > now() - make_interval(secs => $3) AS recently_released
FROM agent_relay_presence p LEFT JOIN agent_relay_replicas r ON r.replica_id = p.replica_id
WHERE p.host_id = $1
"""
_PRIVILEGES = """
SELECT name, privilege, has_table_privilege(current_user, name, privilege) AS allowed
FROM unnest(ARRAY['agent_relay_replicas', 'agent_relay_presence']) AS name,
     unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS privilege
UNION ALL
SELECT 'agent_relay_presence_generation', 'USAGE',
       has_sequence_privilege(current_user, 'agent_relay_presence_generation', 'USAGE')
"""
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class Whereabouts(enum.Enum):
    HELD = "held"  # by a live replica, at ``address``
    MOVING = "moving"  # between replicas: released a moment ago, or its replica went quiet
    ABSENT = "absent"  # offline, as far as any replica knows


@dataclass(frozen=True, slots=True)
class Location:
    state: Whereabouts
    replica_id: uuid.UUID | None = None
    address: str | None = None
    generation: int = 0


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """One NOTIFY: ``host_id`` is now held by ``replica_id`` (None: released)."""

    host_id: uuid.UUID
    replica_id: uuid.UUID | None
    generation: int


def parse_change(payload: str) -> PresenceChange | None:
    """A NOTIFY payload, or None for one this version does not understand."""
    parts = payload.split(" ")
    if len(parts) != 3:
        return None
    try:
        host = uuid.UUID(parts[0])
        replica = None if parts[1] == "-" else uuid.UUID(parts[1])
        generation = int(parts[2])
    except ValueError:
        return None
    return PresenceChange(host, replica, generation)


class PresenceStore:
    """The presence tables of one replica, over a small asyncpg pool, plus one connection
    that LISTENs. Raises StoreUnavailable when the database does not answer."""

    def __init__(self, dsn: str, display: str, replica_id: uuid.UUID) -> None:
        self._dsn = dsn
        self.display = display
        self.replica_id = replica_id
        self._pool: Any = None
        self._listener: Any = None

    @classmethod
    async def open(
        cls, url: str | None, replica_id: uuid.UUID, *, create: bool, pool_size: int = 4
    ) -> PresenceStore:
        """Connect; with ``create`` make the tables if they are missing (and the user
        may), else refuse with SchemaMismatch naming what is missing and the fix."""
        target = parse_database_url(url)
        if target.backend != "postgresql" or target.postgres_dsn is None:
            raise SchemaMismatch(
                "several relay replicas need PostgreSQL: a SQLite relay is a single replica "
                "(unset --replica-address, or use a postgresql:// database)"
            )
        store = cls(target.postgres_dsn, target.display, replica_id)
        try:
            store._pool = await asyncpg.create_pool(
                store._dsn, min_size=1, max_size=pool_size, command_timeout=10
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"cannot connect to {target.display}: {exc}") from exc
        try:
            await store._ensure_schema(create)
        except BaseException:
            await store.close()
            raise
        return store

    async def _ensure_schema(self, create: bool) -> None:
        missing = await self._missing()
        if missing and create:
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                await create_schema(self._pool)
            missing = await self._missing()
        if missing:
            raise SchemaMismatch(
                f"replicas: the database lacks the relay's presence table(s) "
                f"{', '.join(missing)} and this user may not create them; run "
                "`agent-relay migrate --replicas --database-url … --grant-to USER` once as "
                "a user that may (docs/replicas.md). The relay never changes the remote "
                "API's tables."
            )
        denied = [
            f"{row['privilege']} on {row['name']}"
            for row in await self._fetch(_PRIVILEGES)
            if not row["allowed"]
        ]
        if denied:
            raise SchemaMismatch(
                f"replicas: the database user lacks {', '.join(denied)}; run `agent-relay "
                "migrate --replicas --database-url … --grant-to USER` as the tables' owner"
            )

    async def _missing(self) -> list[str]:
        rows = await self._fetch(
            "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL",
            [REPLICAS_TABLE, PRESENCE_TABLE],
        )
        return [str(row["name"]) for row in rows]

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()
            self._pool = None

    # -- this replica ---------------------------------------------------------------

    async def join(self, name: str, address: str) -> None:
        await self._execute(
            "INSERT INTO agent_relay_replicas (replica_id, name, address) VALUES ($1, $2, $3) "
            "ON CONFLICT (replica_id) DO UPDATE SET address = EXCLUDED.address, "
            "heartbeat_at = now()",
            self.replica_id,
            name,
            address,
        )

    async def heartbeat(self) -> bool:
        """False when our row is gone (a survivor judged us dead): join again."""
        status = await self._execute(
            "UPDATE agent_relay_replicas SET heartbeat_at = now() WHERE replica_id = $1",
            self.replica_id,
        )
        return bool(status.endswith(" 1"))

    async def leave(self) -> int:
        """Release every host we hold (marked offline) and remove our row."""
        released = len(await self._fetch(_RELEASE_ALL, self.replica_id))
        await self._execute(
            "DELETE FROM agent_relay_replicas WHERE replica_id = $1", self.replica_id
        )
        return released

    async def release_all(self) -> int:
        """Draining: our hosts are between replicas from now on."""
        return len(await self._fetch(_RELEASE_ALL, self.replica_id))

    async def sweep(self, ttl: float, *, orphans: bool = False) -> int:
        """Release the hosts of replicas silent for ``ttl`` seconds; returns how many."""
        released = len(await self._fetch(_SWEEP, ttl, self.replica_id))
        if orphans:
            await self._execute(_ORPHANS_OFFLINE)
            await self._execute(_FORGET_RELEASED)
        return released

    # -- hosts ----------------------------------------------------------------------

    async def hold(self, host_id: uuid.UUID) -> int:
        """We hold ``host_id`` now (and it is online); returns the hold's generation."""
        rows = await self._fetch(_HOLD, host_id, self.replica_id)
        return int(rows[0]["generation"])

    async def release(self, host_id: uuid.UUID, generation: int) -> bool:
        """The host left us: released and offline, unless someone took it over since."""
        return bool(await self._fetch(_RELEASE, host_id, self.replica_id, generation))

    async def seen(self) -> int:
        """Set ``last_seen_at`` of every host held by this replica to now, in one
        statement; returns how many."""
        status = await self._execute(_SEEN, self.replica_id)
        return int(status.rsplit(" ", 1)[-1]) if status.startswith("UPDATE") else 0

    async def locate(self, host_id: uuid.UUID, ttl: float, grace: float) -> Location:
        rows = await self._fetch(_LOCATE, host_id, ttl, grace)
        if not rows:
            return Location(Whereabouts.ABSENT)
        row = rows[0]
        if row["replica_id"] is not None and row["alive"]:
            return Location(
                Whereabouts.HELD, row["replica_id"], row["address"], int(row["generation"])
            )
        if row["replica_id"] is not None or row["recently_released"]:
            return Location(Whereabouts.MOVING, generation=int(row["generation"]))
        return Location(Whereabouts.ABSENT)

    async def replicas(self, ttl: float) -> list[tuple[uuid.UUID, str]]:
        rows = await self._fetch(
            "SELECT replica_id, address FROM agent_relay_replicas "
            "WHERE heartbeat_at > now() - make_interval(secs => $1)",
            ttl,
        )
        return [(row["replica_id"], str(row["address"])) for row in rows]

    # -- notifications --------------------------------------------------------------

    async def listen(self, on_change: Callable[[PresenceChange], None]) -> None:
        """(Re)open the LISTEN connection; ``on_change`` runs for every NOTIFY."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            self._listener = await asyncpg.connect(self._dsn, timeout=10)

            def deliver(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                change = parse_change(payload)
                if change is not None:
                    on_change(change)

            await self._listener.add_listener(CHANNEL, deliver)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._listener = None
            raise StoreUnavailable(f"cannot LISTEN on {self.display}: {exc}") from exc

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    # -- plumbing -------------------------------------------------------------------

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        try:
            return list(await self._pool.fetch(sql, *args))
        except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"database {self.display}: {exc}") from exc
        except asyncpg.PostgresConnectionError as exc:
            raise StoreUnavailable(f"database {self.display}: {exc}") from exc

    async def _execute(self, sql: str, *args: object) -> str:
        try:
            return str(await self._pool.execute(sql, *args))
        except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"database {self.display}: {exc}") from exc
        except asyncpg.PostgresConnectionError as exc:
            raise StoreUnavailable(f"database {self.display}: {exc}") from exc


async def create_schema(executor: Any) -> None:
    """The presence tables, idempotently (a pool or a connection)."""
    await executor.execute(SCHEMA_SQL)


async def grant_host_keys(url: str, grant_to: str) -> None:
    """Let the relay's database user use ``agent_relay_host_keys`` (``migrate --grant-to``)."""
    if not _ROLE_NAME.fullmatch(grant_to):
        raise SchemaMismatch(f"--grant-to: {grant_to!r} is not a plain role name")
    target = parse_database_url(url)
    if target.postgres_dsn is None:
        return  # SQLite has no roles
    conn = await asyncpg.connect(target.postgres_dsn, timeout=10)
    try:
        # A checked plain name, quoted: no statement takes a role as a parameter.
        await conn.execute(f'GRANT SELECT, INSERT, DELETE ON agent_relay_host_keys TO "{grant_to}"')
    except asyncpg.UndefinedObjectError as exc:
        raise SchemaMismatch(f"--grant-to: {exc}") from None
    finally:
        await conn.close()


async def migrate_presence(url: str, grant_to: str | None = None) -> list[str]:
    """``agent-relay migrate --replicas``: create what is missing (and let ``grant_to``,
    the relay's database user, use it); returns what was missing."""
    if grant_to is not None and not _ROLE_NAME.fullmatch(grant_to):
        raise SchemaMismatch(f"--grant-to: {grant_to!r} is not a plain role name")
    target = parse_database_url(url)
    if target.backend != "postgresql" or target.postgres_dsn is None:
        raise SchemaMismatch("replica presence needs PostgreSQL; SQLite is single-replica")
    try:
        conn = await asyncpg.connect(target.postgres_dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot connect to {target.display}: {exc}") from exc
    try:
        missing = [
            str(row["name"])
            for row in await conn.fetch(
                "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL",
                [REPLICAS_TABLE, PRESENCE_TABLE],
            )
        ]
        try:
            await create_schema(conn)
            if grant_to is not None:
                # A checked plain name, quoted: no statement takes a role as a parameter.
                await conn.execute(
                    "GRANT SELECT, INSERT, UPDATE, DELETE "
                    f'ON agent_relay_replicas, agent_relay_presence TO "{grant_to}";'
                    f'GRANT USAGE ON SEQUENCE agent_relay_presence_generation TO "{grant_to}"'
                )
        except asyncpg.InsufficientPrivilegeError as exc:
            raise SchemaMismatch(f"cannot create the presence tables: {exc}") from None
        except asyncpg.UndefinedObjectError as exc:
            raise SchemaMismatch(f"--grant-to: {exc}") from None
        return missing
    finally:
        await conn.close()

"""PostgreSQL stopped for 10 s under a relay with live hosts: while it is down some hosts
leave for good and others drop and redial; once it is back, no status lies (no ghost
'online' host, no connected host 'offline'), /ready said so meanwhile, and the relay's
log named the database's error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench.herd import Fleet, RelayProcess

from tests.soak.conftest import SOAK_HOSTS
from tests.support.pgcluster import (
    PostgresCluster,
    PostgresNotInstalled,
    find_bindir,
    running_cluster,
)

HOSTS = min(SOAK_HOSTS, 50)
OUTAGE = 10.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    try:
        find_bindir()
    except PostgresNotInstalled as exc:  # scripts/test.sh installs it: a missing one fails
        pytest.fail(f"{exc} (run scripts/postgres.sh)")
    with running_cluster() as running:
        yield running


def online_in_database(cluster: PostgresCluster, database: str) -> set[str]:
    out = cluster.psql("SELECT machine_id FROM hosts WHERE status = 'online'", database=database)
    return {line for line in out.splitlines() if line}


async def ready_status(url: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return (await client.get("/ready")).status_code


async def test_no_ghost_statuses_after_a_database_outage(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    database = cluster.create_database()
    relay = RelayProcess(tmp_path, database_url=cluster.url(database))
    token = relay.user_token()
    relay.start()
    await relay.wait_ready()
    fleet = Fleet(relay.url, token, HOSTS)
    fleet.start()
    try:
        await fleet.wait_connected(120)
        leaving = fleet.connectors[: HOSTS // 5]
        dropping = fleet.connectors[HOSTS // 5 : HOSTS // 2]
        await asyncio.to_thread(cluster.stop)
        down_at = time.monotonic()
        await fleet.stop(leaving)  # their 'offline' cannot be written now
        for connector in dropping:  # these redial into a relay without its database
            session = connector._session
            assert session is not None
            session._transport.websocket.transport.abort()  # type: ignore[attr-defined]
        for _ in range(100):
            if await ready_status(relay.url) == 503:
                break
            await asyncio.sleep(0.1)
        assert await ready_status(relay.url) == 503, "/ready said ready without a database"
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
        await asyncio.to_thread(cluster.start)
        staying = [c for c in fleet.connectors if c not in leaving]
        deadline = time.monotonic() + 60
        while not all(c.state.connected for c in staying):
            assert time.monotonic() < deadline, "hosts did not come back after the outage"
            await asyncio.sleep(0.1)
        expected = {c.config.machine_id for c in staying}
        deadline = time.monotonic() + 30
        while (stored := online_in_database(cluster, database)) != expected:
            assert time.monotonic() < deadline, (
                f"{len(stored - expected)} ghost 'online' host(s), "
                f"{len(expected - stored)} connected host(s) 'offline'"
            )
            await asyncio.sleep(0.25)
        assert await ready_status(relay.url) == 200
        log = relay.log_path.read_text(errors="replace")
        assert "cannot write host statuses, retrying until it works: " in log, relay.logs()
        assert "host status writes work again" in log
    finally:
        await fleet.stop()
        relay.stop()
        cluster.drop_database(database)

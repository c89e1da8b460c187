"""Restart herd and network blip with many real connectors against one relay process.

The relay runs as ``agent-relay server`` on SQLite (so it can be SIGKILLed); this process
plays ``SOAK_HOSTS`` hosts with their production backoff. After each restart every host
must be back (the p99 is printed and held under a generous bound: the 5 s target lives
in ``bench/herd.py``, which prints it beside the measurement); after every connection is
aborted at once, the database's statuses must equal the live tunnels.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from bench.herd import Fleet, RelayProcess, print_table, restart

from tests.soak.conftest import SOAK_HOSTS

pytestmark = pytest.mark.asyncio(loop_scope="module")

P99_BOUND = 30.0  # seconds after the listener answers; generous for a loaded CI machine
CONNECT_TIMEOUT = 120.0


class Herd:
    def __init__(self, relay: RelayProcess, fleet: Fleet, token: str) -> None:
        self.relay = relay
        self.fleet = fleet
        self.token = token

    def database_online(self) -> set[str]:
        path = self.relay.data_dir / "relay.sqlite3"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute("SELECT machine_id FROM hosts WHERE status = 'online'").fetchall()
        return {row[0] for row in rows}

    async def relay_online(self) -> set[str]:
        async with httpx.AsyncClient(base_url=self.relay.url, timeout=30) as client:
            response = await client.get(
                "/v1/hosts", headers={"Authorization": f"Bearer {self.token}"}
            )
        response.raise_for_status()
        return {h["machine_id"] for h in response.json()["hosts"] if h["online"]}

    async def statuses_settle(self, timeout: float = 15.0) -> None:
        """The database's 'online' hosts equal the relay's tunnels and the connected
        connectors (all three read after the fleet is back)."""
        deadline = time.monotonic() + timeout
        while True:
            connected = self.fleet.machine_ids(connected=True)
            live = await self.relay_online()
            stored = self.database_online()
            if stored == live == connected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"statuses lie: {len(stored - live)} online in the database without a "
                    f"tunnel, {len(live - stored)} tunnels marked offline; "
                    f"{len(live ^ connected)} differ between relay and connectors"
                )
            await asyncio.sleep(0.2)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def herd(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Herd]:
    relay = RelayProcess(Path(tmp_path_factory.mktemp("herd")))
    token = relay.user_token()
    relay.start()
    await relay.wait_ready()
    fleet = Fleet(relay.url, token, SOAK_HOSTS)
    fleet.start()
    try:
        await fleet.wait_connected(CONNECT_TIMEOUT)
        yield Herd(relay, fleet, token)
    finally:
        await fleet.stop()
        relay.stop()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
async def test_every_host_is_back_after_a_relay_restart(herd: Herd, signum: int) -> None:
    result = await restart(herd.relay, herd.fleet, signum, timeout=CONNECT_TIMEOUT)
    print()
    print_table(result.rows())
    assert result.p99_from_ready < P99_BOUND
    # Every host reconnected once: no dial was abandoned while the relay upgraded it.
    assert result.upgraded_per_host < 1.05
    await herd.statuses_settle()


async def test_statuses_equal_live_tunnels_after_a_network_blip(herd: Herd) -> None:
    before = herd.fleet.connections()
    assert herd.fleet.abort_all() == len(herd.fleet)
    await herd.fleet.wait_back(before, CONNECT_TIMEOUT)
    # The old connections' ends race the new ones' starts at the relay: no host may be
    # left 'offline' while connected, nor 'online' without a tunnel.
    await herd.statuses_settle()

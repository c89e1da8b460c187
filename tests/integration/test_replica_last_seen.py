"""With replicas, presence writes the statuses instead of the stand-alone status writer;
``hosts.last_seen_at`` of the hosts a replica holds is still kept fresh (the stand-alone
reconcile refreshes it every 30 s; a replica does it from its heartbeat)."""

from __future__ import annotations

import asyncio

from agent_relay.relay.config import ReplicaConfig
from tests.support.relay import running_relay


async def test_a_replica_refreshes_last_seen_at_of_the_hosts_it_holds(postgres_url: str) -> None:
    replica = ReplicaConfig(
        advertise="127.0.0.1:1",
        listen_host="127.0.0.1",
        listen_port=0,
        heartbeat=0.05,
        seen_every=0.1,
    )
    # The replica's presence opens its own pool on the configured URL.
    async with running_relay(postgres_url, database_url=postgres_url, replica=replica) as relay:
        assert relay.service.replicas is not None  # presence, not the status writer
        host = await relay.host()
        try:
            host_id = await relay.host_id()
            [first] = await relay.store.list_hosts_for_user(relay.user_id)
            assert first.last_seen_at is not None
            later = first.last_seen_at
            for _ in range(200):  # the hold set it; the heartbeat moves it on
                await asyncio.sleep(0.05)
                [row] = await relay.store.list_hosts_for_user(relay.user_id)
                assert row.id == host_id
                assert row.last_seen_at is not None
                later = row.last_seen_at
                if later > first.last_seen_at:
                    break
            assert later > first.last_seen_at
        finally:
            await host.close()

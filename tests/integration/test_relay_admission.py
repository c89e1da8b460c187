"""Admission by held bytes, end to end: one user's clients that never read can make the
relay open only as many streams as the user's share of the buffer budget has room for;
the rest wait and get 503, and the room comes back when those clients go."""

from __future__ import annotations

import asyncio

from agent_relay.mux.frame import INITIAL_WINDOW
from tests.support.connector import eventually, running_connector
from tests.support.localserver import local_server
from tests.support.relay import running_relay

MIB = 1024 * 1024
BUDGET = 4 * MIB  # a user's share is half: room for 8 unanswered streams' initial windows
SHARE = BUDGET // 2
CLIENTS = 20


async def test_stalled_clients_of_one_user_get_only_the_budgets_worth_of_streams(
    sqlite_url: str,
) -> None:
    async with (
        local_server() as local,
        running_relay(sqlite_url, buffer_budget=BUDGET) as relay,
        running_connector(relay, local.url),
    ):
        admission = relay.service.app.admission
        admission.max_wait = 2.0
        base = await relay.path()
        port = int(relay.url.rsplit(":", 1)[1])
        clients = []
        for _ in range(CLIENTS):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {base}/bytes/{64 * MIB} HTTP/1.1\r\nhost: relay\r\n\r\n".encode())
            clients.append((reader, writer))
        heads = await asyncio.gather(*(r.readuntil(b"\r\n\r\n") for r, _ in clients))
        admitted = [h for h in heads if h.startswith(b"HTTP/1.1 200 ")]
        refused = [h for h in heads if h.startswith(b"HTTP/1.1 503 ")]
        assert len(admitted) + len(refused) == CLIENTS
        # The first ones fill the share with reservations (one initial window each; for
        # its first second an answered stream's bytes count beside its reservation);
        # once settled, a stream counts only the bytes it really holds, which for a
        # stalled client is most of its window: few more fit in the wait.
        fill = SHARE // INITIAL_WINDOW
        assert fill - 2 <= len(admitted) <= fill + 4
        assert refused
        assert all(b"retry-after: 1" in h.lower() for h in refused)
        # What the admitted streams then hold is the receive budget's to bound.
        assert admission.total.buffered <= BUDGET
        assert relay.service.app.metrics.admission_refused._value.get() == len(refused)
        # Their clients go: the room is back, and the user's next request runs.
        for _, writer in clients:
            writer.transport.abort()
        await eventually(lambda: admission.held_by(relay.user_id) == 0, timeout=10)
        answer = await relay.client.get(f"{base}/bytes/{MIB}")
        assert answer.status_code == 200
        assert len(answer.content) == MIB

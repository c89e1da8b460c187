"""Parts of the system die and come back, as real processes killed with SIGKILL (or
stopped with SIGTERM): the relay (the connector must reconnect), the local agent server
(502, then 200), and the connector (404 `No active relay`, then 200). Each test has a
stack of its own."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from agent_relay.keyfile import write_secret_file

from .stack import (
    MIB,
    USER,
    Process,
    Stack,
    admin,
    connector_command,
    expected_blob_digest,
    free_port,
    get_json,
    report,
)

pytestmark = pytest.mark.timeout(90)

RECOVERY_BOUND = 30.0  # seconds; the connector's backoff starts at 1 s (full jitter)
OUTAGE = 3.0  # seconds the relay stays down: several attempts, and a grown backoff


async def wait_for_status(
    api: httpx.AsyncClient, path: str, wanted: int, timeout: float
) -> tuple[httpx.Response, float, list[int]]:
    """Poll until the answer has the wanted status: (that answer, seconds waited, the
    statuses seen before it; -1 for a refused connection)."""
    began = time.monotonic()
    seen: list[int] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    response = await api.get(path)
                except httpx.TransportError:
                    seen.append(-1)
                else:
                    if response.status_code == wanted:
                        return response, time.monotonic() - began, seen
                    seen.append(response.status_code)
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(
            f"no {wanted} for {path} within {timeout} s; saw {sorted(set(seen))}"
        ) from None


async def stream_ends(stream: httpx.Response, timeout: float = 10.0) -> str:
    """Read an open response until it ends; how it ended (never a hang)."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in stream.aiter_raw():
                pass
    except TimeoutError:
        raise AssertionError(f"the stream was still open after {timeout} s") from None
    except httpx.TransportError as exc:
        return type(exc).__name__
    return "end of body"


async def wait_for_connector(stack: Stack, connected: bool, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            status = await asyncio.to_thread(stack.status)
            if status is not None and status["connected"] is connected:
                return status
            await asyncio.sleep(0.05)


async def wait_for_state(stack: Stack, state: str, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            status = await asyncio.to_thread(stack.status)
            if status is not None and status["state"] == state:
                return status
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
async def test_relay_restart_the_connector_reconnects(fresh_stack: Stack, how: str) -> None:
    stack = fresh_stack
    async with httpx.AsyncClient(base_url=stack.base, timeout=10) as api:
        assert (await api.get("/api/whoami")).status_code == 200
        before = stack.status()
        assert before is not None
        assert before["reconnects"] == 0, before

        if how == "SIGKILL":
            stack.relay.kill()
        else:
            # A graceful stop: a download in flight is let finish first.
            stopped: list[asyncio.Task[int | None]] = []

            async def stop_relay() -> None:
                stopped.append(asyncio.create_task(asyncio.to_thread(stack.relay.stop)))

            await download_across(api, 32 * MIB, stop_relay)
            assert await stopped[0] == 0, stack.relay.logs()
            assert not stack.relay.killed_after_sigterm
        with pytest.raises(httpx.TransportError):
            await api.get("/api/whoami")
        # The connector notices, says so on its status endpoint, and keeps trying.
        down = await wait_for_connector(stack, False, 10)
        assert down["last_error"], down
        await asyncio.sleep(OUTAGE)
        during = stack.status()
        assert during is not None
        assert during["connected"] is False, during
        assert during["failed_attempts"] >= 1, during
        assert during["state"] in {"retrying", "connecting"}, during

        # Same port, same data dir: same host id, and the relay session still stands.
        relay_start = await asyncio.to_thread(stack.relay.start)
        response, waited, seen = await wait_for_status(api, "/api/whoami", 200, RECOVERY_BOUND)
        assert response.json()["relayed"] is True
        # Until the connector was back, the relay said it was not there.
        assert set(seen) <= {404}, seen
        after = stack.status()
        assert after is not None
        assert after["connected"] is True, after
        assert after["reconnects"] == 1, after
        assert after["host_id"] == stack.host_id, after
        report(
            f"relay stopped by {how}, down {OUTAGE:.0f} s, restarted in {relay_start:.2f} s: "
            f"requests succeed again {waited:.2f} s after it is ready "
            f"({during['failed_attempts']} failed attempts while down)"
        )
        assert waited < RECOVERY_BOUND
        for _ in range(20):
            assert (await api.get("/api/workspaces")).status_code == 200


async def test_upstream_down_is_502_then_back(fresh_stack: Stack) -> None:
    stack = fresh_stack
    async with httpx.AsyncClient(base_url=stack.base, timeout=10) as api:
        assert (await api.get("/api/workspaces")).status_code == 200  # a pooled connection
        async with api.stream("GET", "/api/events") as events:
            assert events.status_code == 200
            stack.sample.kill()
            # A response in progress ends when its server dies; it does not hang, and
            # the cut shows (a chunked body must not end as if it were complete).
            ended = await stream_ends(events)
        assert ended != "end of body"
        for _ in range(3):
            down = await api.get("/api/workspaces")
            assert down.status_code == 502
            assert down.headers["content-type"].startswith("application/json")
            error = down.json()["error"]
            assert isinstance(error, str)
            assert error
        status = stack.status()
        assert status is not None
        assert status["connected"] is True  # the tunnel itself is unharmed

        await asyncio.to_thread(stack.sample.start)
        back = await api.get("/api/workspaces")
        assert back.status_code == 200
        assert [w["name"] for w in back.json()["workspaces"]][:2] == ["agent-relay", "homelab"]

        # A quick restart between requests leaves the pool holding dead keep-alive
        # connections: they must be noticed (or retried), not answered as 502.
        async def slow_body() -> AsyncIterator[bytes]:
            yield b"x" * 1000
            await asyncio.sleep(0.5)  # the uploads overlap: one connection each
            yield b"y" * 1000

        several = await asyncio.gather(
            *(api.post("/api/blob", content=slow_body()) for _ in range(3))
        )
        assert [r.json()["bytes"] for r in several] == [2000] * 3
        pool = stack.status()
        assert pool is not None
        assert pool["upstream_pool"]["idle"] >= 2
        stack.sample.kill()
        await asyncio.to_thread(stack.sample.start)
        after = await asyncio.gather(*(api.get("/api/whoami") for _ in range(4)))
        assert [r.status_code for r in after] == [200] * 4
        report(f"sample server killed: open event stream ended ({ended}), then 502: {error!r}")


async def test_connector_killed_is_404_no_active_relay_then_back(fresh_stack: Stack) -> None:
    stack = fresh_stack
    async with (
        httpx.AsyncClient(base_url=stack.base, timeout=10) as api,
        ws_connect(stack.ws_base + "/api/terminal") as terminal,
    ):
        assert (await api.get("/api/whoami")).status_code == 200
        assert "$ " in str(await terminal.recv())
        async with api.stream("GET", "/api/events") as events:
            assert events.status_code == 200
            stack.connector.kill()
            # What was in flight through the tunnel ends with it, on both kinds of stream.
            ended = await stream_ends(events)
        assert ended != "end of body"
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                await terminal.recv()

        gone, waited, seen = await wait_for_status(api, "/api/whoami", 404, 10)
        assert gone.json() == {"error": "No active relay"}
        assert set(seen) <= {502}, seen
        hosts = await api.get(
            f"{stack.relay_url}/v1/hosts", headers={"Authorization": f"Bearer {stack.token}"}
        )
        [host] = hosts.json()["hosts"]
        assert (host["id"], host["online"]) == (stack.host_id, False)
        # Still gone a moment later: not a blip.
        await asyncio.sleep(0.3)
        assert (await api.get("/api/whoami")).status_code == 404

        # The same data dir keeps the machine id, hence the host and the relay session.
        await asyncio.to_thread(stack.connector.start)
        back = await api.get("/api/whoami")
        assert back.status_code == 200
        assert back.json()["relayed"] is True
        report(
            f"connector killed: open event stream ended ({ended}), WebSocket closed, "
            f"404 No active relay after {waited:.2f} s"
        )


async def download_across(
    api: httpx.AsyncClient, size: int, interrupt: Callable[[], Awaitable[None]]
) -> None:
    """Download a blob, calling ``interrupt`` after its first MiB, then reading the rest
    at a pace that makes it last most of a second; it must arrive whole."""
    digest = hashlib.sha256()
    received = 0
    async with api.stream("GET", f"/api/blob?size={size}") as download:
        assert download.status_code == 200
        chunks = download.aiter_raw()
        while received < MIB:
            chunk = await anext(chunks)
            digest.update(chunk)
            received += len(chunk)
        await interrupt()
        async for chunk in chunks:
            digest.update(chunk)
            received += len(chunk)
            await asyncio.sleep(0.01 * len(chunk) / MIB)
    assert received == size
    assert digest.hexdigest() == expected_blob_digest(size)


async def test_connector_sigterm_lets_a_download_in_flight_finish(fresh_stack: Stack) -> None:
    stack = fresh_stack

    async def stop_connector() -> None:
        stack.connector.signal(signal.SIGTERM)
        stopping = await wait_for_state(stack, "stopping", 5)
        assert stopping["active_streams"] == 1

    async with httpx.AsyncClient(base_url=stack.base, timeout=10) as api:
        await download_across(api, 32 * MIB, stop_connector)
        exit_code = await asyncio.to_thread(stack.connector.wait)  # bounded by STOP_TIMEOUT
        assert exit_code == 0
        assert not stack.connector.killed_after_sigterm
        gone = await api.get("/api/whoami")
        assert gone.status_code == 404
        assert gone.json() == {"error": "No active relay"}


async def test_connector_with_a_revoked_token_says_so_and_keeps_trying(
    fresh_stack: Stack,
) -> None:
    stack = fresh_stack
    relay_data = stack.root / "relay-data"
    revoked = admin(relay_data, "tokens", "issue", USER, "--ttl", "1h").strip()
    admin(relay_data, "tokens", "revoke", revoked)
    token_file = stack.root / "revoked-token"
    write_secret_file(token_file, (revoked + "\n").encode())
    status_url = f"http://127.0.0.1:{(status_port := free_port())}/_relay/status"

    def refused() -> bool:
        status = get_json(status_url)
        return bool(status and status["failed_attempts"] >= 1)

    second = Process(
        "connector-revoked",
        connector_command(
            stack.relay_url, stack.sample_url, token_file, status_port, stack.root / "host-2"
        ),
        stack.root,
        ready=refused,
    )
    try:
        await asyncio.to_thread(second.start)
        status = get_json(status_url)
        assert status["connected"] is False
        assert status["state"] == "retrying"
        assert "401" in status["last_error"]
        assert "401" in status["status"]
        # Retried slowly: a refused token will not get better on its own.
        assert status["next_retry_in_seconds"] >= 10
        assert second.running
        # The relay knows only the first host, and it still works.
        async with httpx.AsyncClient(base_url=stack.base, timeout=10) as api:
            hosts = await api.get(
                f"{stack.relay_url}/v1/hosts", headers={"Authorization": f"Bearer {stack.token}"}
            )
            assert [h["id"] for h in hosts.json()["hosts"]] == [stack.host_id]
            assert (await api.get("/api/whoami")).status_code == 200
        report(f"revoked token: connector status says {status['status']!r}")
    finally:
        assert second.close() == 0
        assert not second.killed_after_sigterm

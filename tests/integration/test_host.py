"""The host connector end to end on loopback: a real relay (from test_relay's helper), the
connector dialing it over a real WebSocket, and a real local server behind it."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from agent_relay.host import (
    BackoffPolicy,
    Connector,
    FileToken,
    ForwardLimits,
    Phase,
    PoolLimits,
    StaticToken,
    StatusServer,
)
from agent_relay.relay.service import RelayService
from agent_relay.store import Store
from tests.support.connector import eventually, running_connector
from tests.support.fakehost import pattern
from tests.support.localserver import LocalServer, local_server
from tests.support.relay import Relay, running_relay

MIB = 1024 * 1024


@pytest.fixture
async def connector(relay: Relay, local: LocalServer) -> AsyncIterator[Connector]:
    async with running_connector(relay, local.url) as running:
        yield running


# --------------------------------------------------------------------- requests


async def test_request_through_relay_and_connector(database_url: str) -> None:
    async with (
        running_relay(database_url) as relay,
        local_server() as local,
        running_connector(relay, local.url),
    ):
        base = await relay.path()
        response = await relay.client.post(f"{base}/echo?x=1&y=%20", content=b"ping")
        assert response.status_code == 200
        assert response.content == b"ping"
        assert response.headers["x-target"] == "/echo?x=1&y=%20"
        hosts = (await relay.client.get("/v1/hosts", headers=relay.auth())).json()["hosts"]
        assert [(h["machine_id"], h["name"], h["online"]) for h in hosts] == [
            ("machine-1", "test-host", True)
        ]


async def test_relayed_header_is_overwritten_and_host_is_the_local_server(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    response = await relay.client.get(
        f"{base}/headers",
        headers=[
            ("x-vk-relayed", "0"),
            ("X-VK-Relayed", "spoofed"),
            ("x-forwarded-host", "evil.example"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "hop-by-hop"),
            ("x-keep-me", "end-to-end"),
        ],
    )
    assert response.status_code == 200
    headers: list[list[str]] = response.json()["headers"]
    assert [v for k, v in headers if k == "x-vk-relayed"] == ["1"]
    assert [v for k, v in headers if k == "host"] == [local.url.removeprefix("http://")]
    relay_authority = relay.url.removeprefix("http://")
    assert [v for k, v in headers if k == "x-forwarded-host"] == [relay_authority]
    assert ["x-keep-me", "end-to-end"] in headers
    names = {k for k, _ in headers}
    assert "x-drop-me" not in names
    assert "connection" not in names


async def test_keep_alive_pool_reuses_upstream_connections(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    for i in range(20):
        response = await relay.client.post(f"{base}/echo", content=f"n{i}".encode())
        assert response.content == f"n{i}".encode()
    assert local.connections == 1
    assert connector.pool.reuses == 19
    # Concurrent requests need more connections, which are then kept and reused.
    responses = await asyncio.gather(*(relay.client.get(f"{base}/sleep/0.2") for _ in range(5)))
    assert all(r.status_code == 200 for r in responses)
    opened = local.connections
    assert 2 <= opened <= 5
    for _ in range(10):
        assert (await relay.client.get(f"{base}/echo")).status_code == 200
    assert local.connections == opened
    assert connector.pool.stats()["opened"] == opened


async def test_pool_is_bounded_and_requests_wait_their_turn(
    relay: Relay, local: LocalServer
) -> None:
    limits = PoolLimits(max_connections=2, max_idle=2)
    async with running_connector(relay, local.url, pool_limits=limits) as connector:
        base = await relay.path()
        responses = await asyncio.gather(*(relay.client.get(f"{base}/sleep/0.2") for _ in range(6)))
        assert [r.status_code for r in responses] == [200] * 6
        assert local.max_busy == 2
        assert local.connections == 2
        assert connector.pool.stats()["in_use"] == 0


async def test_a_full_pool_answers_503_after_the_wait(relay: Relay, local: LocalServer) -> None:
    limits = PoolLimits(max_connections=1, max_idle=1, wait_timeout=0.2)
    async with running_connector(relay, local.url, pool_limits=limits):
        base = await relay.path()
        slow = asyncio.create_task(relay.client.get(f"{base}/sleep/1"))
        await eventually(lambda: local.busy == 1)
        refused = await relay.client.get(f"{base}/echo")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["error"]
        assert (await slow).status_code == 200


async def test_idle_connections_expire(relay: Relay, local: LocalServer) -> None:
    limits = PoolLimits(idle_timeout=0.2)
    async with running_connector(relay, local.url, pool_limits=limits) as connector:
        base = await relay.path()
        assert (await relay.client.get(f"{base}/echo")).status_code == 200
        assert connector.pool.idle == 1
        await eventually(lambda: connector.pool.idle == 0 and local.open == 0)
        assert (await relay.client.get(f"{base}/echo")).status_code == 200
        assert local.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    # The server ends its keep-alive connections (as on its idle timeout).
    for task in list(local._tasks):
        task.cancel()
    await eventually(lambda: local.open == 0 and connector.pool.idle == 0)
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    assert local.connections == 2


async def test_a_stale_kept_alive_connection_is_retried_for_bodyless_requests(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    local.drop_request_number = 2  # every connection dies on its second request
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    retried = await relay.client.get(f"{base}/echo")
    assert retried.status_code == 200
    assert local.connections == 2
    # A request with a body cannot be replayed: the failure is reported.
    failed = await relay.client.post(f"{base}/echo", content=b"body")
    assert failed.status_code == 502
    assert "without answering" in failed.json()["error"]


async def test_large_upload_and_download_stream_with_checksums(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    body = random.randbytes(16 * MIB)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), MIB):
            yield body[start : start + MIB]

    upload = await relay.client.post(f"{base}/upload", content=chunks())
    assert upload.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"
    size = 32 * MIB
    digest = hashlib.sha256()
    received = 0
    async with relay.client.stream("GET", f"{base}/bytes/{size}") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(size)
        async for chunk in response.aiter_raw():
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.digest() == hashlib.sha256(pattern(size)).digest()
    assert local.connections == 1  # both went over the same kept-alive connection


async def test_a_slow_client_holds_back_the_local_server(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    size = 128 * MIB
    async with relay.client.stream("GET", f"{base}/bytes/{size}") as response:
        assert response.status_code == 200
        chunks = response.aiter_raw()
        assert await anext(chunks)
        await asyncio.sleep(0.5)
        # Held back by the windows and buffers of the hops, far from the whole body.
        assert local.busy == 1
        assert connector.state.active_streams == 1
        assert local.bytes_sent < 32 * MIB, local.bytes_sent
    await eventually(lambda: local.busy == 0 and connector.state.active_streams == 0)


async def test_a_stream_the_relay_gives_up_frees_the_local_connection_at_once(
    sqlite_url: str, local: LocalServer
) -> None:
    async with (
        running_relay(sqlite_url, total_timeout=0.5) as relay,
        running_connector(relay, local.url) as connector,
    ):
        base = await relay.path()
        async with relay.client.stream("GET", f"{base}/trickle") as response:
            with pytest.raises(httpx.RemoteProtocolError):
                await response.aread()
        # The relay reset the stream at its deadline; the connector does not wait for the
        # local server's next event to find out, and drops the local connection.
        await eventually(lambda: connector.state.active_streams == 0, timeout=1)
        assert connector.pool.stats() | {"max_connections": 0} == {
            "in_use": 0,
            "idle": 0,  # dropped, not kept: it was in the middle of a response
            "opened": 1,
            "reuses": 0,
            "max_connections": 0,
        }


async def test_early_answer_without_reading_the_body(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    async with httpx.AsyncClient(base_url=relay.url, timeout=30) as client:
        response = await client.post(f"{base}/early-answer", content=b"x" * (4 * MIB))
    assert response.status_code == 413
    assert response.content == b"too big"
    await eventually(lambda: connector.state.active_streams == 0)
    # The connection that still expected the rest of the body was not reused.
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    assert local.connections == 2


# --------------------------------------------------------------------- upgrades


async def test_raw_upgrade_is_spliced_through_both_hops(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    assert relay.service.address is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.service.address[1])
    writer.write(
        f"GET {base}/upgrade HTTP/1.1\r\nhost: relay\r\nconnection: upgrade\r\n"
        "upgrade: echo\r\n\r\nearly bytes ".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"upgrade: echo" in head.lower()
    writer.write(b"and more")
    got = b""
    while len(got) < len(b"EARLY BYTES AND MORE"):
        got += await reader.read(100)
    assert got == b"EARLY BYTES AND MORE"
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    # The upgraded connection was taken out of the pool, not returned to it.
    await eventually(lambda: connector.pool.stats()["in_use"] == 0)
    assert connector.pool.idle == 0
    assert (await relay.client.get(f"{base}/echo")).status_code == 200


async def test_websocket_through_relay_and_connector(relay: Relay) -> None:
    seen_headers: list[dict[str, str]] = []

    async def echo(websocket: ServerConnection) -> None:
        assert websocket.request is not None
        seen_headers.append({k.lower(): v for k, v in websocket.request.headers.raw_items()})
        async for message in websocket:
            await websocket.send(message)

    async with ws_serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with running_connector(relay, f"http://127.0.0.1:{port}"):
            base = await relay.path()
            url = relay.url.replace("http://", "ws://") + f"{base}/ws?token=x"
            async with ws_connect(url, max_size=None) as websocket:
                await websocket.send("hello")
                assert await websocket.recv() == "hello"
                big = random.randbytes(3 * MIB)
                await websocket.send(big)
                assert await websocket.recv() == big
    assert seen_headers[0]["x-vk-relayed"] == "1"
    assert seen_headers[0]["upgrade"].lower() == "websocket"


# --------------------------------------------------------------------- failures


async def test_local_server_down_is_502_json(relay: Relay) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with running_connector(relay, f"http://127.0.0.1:{port}"):
        base = await relay.path()
        response = await relay.client.get(f"{base}/anything")
        assert response.status_code == 502
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert "connection refused" in error
        assert f"127.0.0.1:{port}" in error


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/garbage", "bad response from the local server"),
        ("/silence", "closed the connection without answering"),
        ("/reset", "closed the connection without answering"),
    ],
)
async def test_bad_local_answers_are_502_json(
    relay: Relay, local: LocalServer, connector: Connector, path: str, message: str
) -> None:
    base = await relay.path()
    response = await relay.client.get(f"{base}{path}")
    assert response.status_code == 502
    assert message in response.json()["error"]
    assert (await relay.client.get(f"{base}/echo")).status_code == 200


async def test_local_server_timeout_is_502(relay: Relay, local: LocalServer) -> None:
    forward = ForwardLimits(response_timeout=0.2)
    async with running_connector(relay, local.url, forward=forward):
        base = await relay.path()
        response = await relay.client.get(f"{base}/sleep/2")
        assert response.status_code == 502
        assert "did not answer within 0.2 s" in response.json()["error"]


@pytest.mark.parametrize("path", ["/break", f"/break/{4 * MIB}"])  # short, long body
async def test_a_response_that_breaks_off_cuts_the_client(
    relay: Relay, local: LocalServer, connector: Connector, path: str
) -> None:
    base = await relay.path()
    with pytest.raises(httpx.RemoteProtocolError):
        await relay.client.get(f"{base}{path}")
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    await eventually(lambda: connector.state.active_streams == 0)


async def test_after_a_long_body_the_next_request_goes_on_a_new_connection(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    """A long body is read past h11 (fewer copies), so its connection is not kept."""
    base = await relay.path()
    size = 3 * MIB
    response = await relay.client.get(f"{base}/bytes/{size}")
    assert response.content == pattern(size)
    assert (await relay.client.get(f"{base}/bytes/1000")).content == pattern(1000)
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    assert local.connections == 2  # the short answer's connection was kept for the echo


# --------------------------------------------------------------------- the control channel


async def test_relay_restart_reconnects(sqlite_url: str, local: LocalServer) -> None:
    async with running_relay(sqlite_url) as relay:
        async with running_connector(relay, local.url) as connector:
            base = await relay.path()
            assert (await relay.client.get(f"{base}/echo")).status_code == 200
            assert relay.service.address is not None
            port = relay.service.address[1]
            await relay.service.stop()
            await eventually(lambda: not connector.state.connected)
            assert connector.state.last_error is not None
            store = await Store.open(sqlite_url)
            config = dataclasses.replace(relay.service.config, listen_port=port)
            restarted = RelayService(config, store)
            await restarted.start()
            try:
                await eventually(lambda: connector.state.connected)
                assert connector.state.reconnects == 1
                async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as client:
                    # The same host record and browser session work again.
                    for _ in range(100):
                        response = await client.get(f"{base}/echo")
                        if response.status_code != 404:
                            break
                        await asyncio.sleep(0.02)
                    assert response.status_code == 200
            finally:
                await connector.stop(timeout=5)
                await restarted.stop()
        relay.service.stop = _noop  # type: ignore[method-assign]


async def _noop() -> None:
    return None


async def test_rejected_token_is_reported_plainly_and_retried(
    relay: Relay, local: LocalServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("not-a-valid-token\n")
    token_file.chmod(0o600)
    slow_cap = BackoffPolicy(base=0.05, cap=0.2)
    async with running_connector(
        relay, local.url, tokens=FileToken(token_file), wait=False, backoff=slow_cap
    ) as connector:
        await eventually(lambda: connector.state.failed_attempts >= 2)
        state = connector.state
        assert not state.connected
        assert state.last_error == "401 malformed token"
        snapshot = connector.snapshot()
        assert snapshot["last_error"] == "401 malformed token"
        # A rotated token is picked up on the next attempt.
        token_file.write_text(relay.token + "\n")
        await eventually(lambda: connector.state.connected)
        base = await relay.path()
        assert (await relay.client.get(f"{base}/echo")).status_code == 200


async def test_refused_token_log_line(
    relay: Relay, local: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="agent_relay.host.connector")
    async with running_connector(
        relay, local.url, tokens=StaticToken("x.y.z"), wait=False
    ) as connector:
        await eventually(lambda: connector.state.failed_attempts >= 1)
    [line] = [r.getMessage() for r in caplog.records][:1]
    assert line.startswith("retrying in ")
    assert ": 401 " in line
    assert "the relay refused the token from --token" in line


async def test_graceful_stop_finishes_the_request_in_flight(
    relay: Relay, local: LocalServer
) -> None:
    async with running_connector(relay, local.url) as connector:
        base = await relay.path()
        pending = asyncio.create_task(relay.client.get(f"{base}/sleep/0.5"))
        await eventually(lambda: local.busy == 1)
        await connector.stop(timeout=5)
        response = await pending
        assert response.status_code == 200
        assert response.content == b"slept"
        assert connector.state.phase is Phase.STOPPED
        # The relay saw the host go.
        for _ in range(100):
            gone = await relay.client.get(f"{base}/echo")
            if gone.status_code == 404:
                break
            await asyncio.sleep(0.02)
        assert gone.json() == {"error": "No active relay"}


async def test_graceful_stop_cuts_what_outlives_the_deadline(
    relay: Relay, local: LocalServer
) -> None:
    async with running_connector(relay, local.url) as connector:
        base = await relay.path()
        pending = asyncio.create_task(relay.client.get(f"{base}/sleep/5"))
        await eventually(lambda: local.busy == 1)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(connector.stop(timeout=0.2), 3)
        response = await pending
        assert asyncio.get_running_loop().time() - started < 2
        assert response.status_code == 502
        assert connector.pool.stats()["in_use"] == 0


async def test_stop_while_retrying_returns_at_once(relay: Relay, local: LocalServer) -> None:
    async with running_connector(
        relay, local.url, tokens=StaticToken("x.y.z"), wait=False, backoff=BackoffPolicy(cap=60)
    ) as connector:
        await eventually(lambda: connector.state.phase is Phase.RETRYING)
        await asyncio.wait_for(connector.stop(), 2)


# --------------------------------------------------------------------- unix socket, status


async def test_unix_socket_upstream(relay: Relay, tmp_path: Path) -> None:
    async with (
        local_server(unix_path=tmp_path / "agent.sock") as local,
        running_connector(relay, local.url),
    ):
        base = await relay.path()
        for _ in range(3):
            response = await relay.client.post(f"{base}/echo", content=b"over unix")
            assert response.content == b"over unix"
        headers = (await relay.client.get(f"{base}/headers")).json()["headers"]
        assert ["host", "localhost"] in headers
        assert local.connections == 1


async def test_status_endpoint(relay: Relay, local: LocalServer, connector: Connector) -> None:
    status = StatusServer(connector.snapshot)
    host, port = await status.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            host_id = await relay.host_id()
            await eventually(lambda: connector.state.host_id is not None)
            base = await relay.path()
            assert (await relay.client.get(f"{base}/echo")).status_code == 200
            # The stream ends when the relay's FIN arrives, which may trail the answer.
            await eventually(lambda: connector.state.active_streams == 0)
            response = await client.get("/_relay/status")
            assert response.status_code == 200
            body = response.json()
            assert body["connected"] is True
            assert body["state"] == "connected"
            assert body["status"].startswith("connected to ws://127.0.0.1:")
            assert body["relay_url"] == relay.url.replace("http://", "ws://") + "/v1/relay/connect"
            assert relay.token not in json.dumps(body)
            assert body["host_id"] == str(host_id)
            assert body["machine_id"] == "machine-1"
            assert body["name"] == "test-host"
            assert body["upstream"] == local.url
            assert body["reconnects"] == 0
            assert body["active_streams"] == 0
            assert body["streams_served"] == 1
            assert body["last_error"] is None
            assert body["connected_since"].endswith("Z")
            assert body["uptime_seconds"] >= 0
            assert body["upstream_pool"]["opened"] == 1
            missing = await client.get("/nope")
            assert missing.status_code == 404
            assert "error" in missing.json()
            assert (await client.post("/_relay/status")).status_code == 405
    finally:
        await status.stop()


async def test_each_relay_stream_is_ended_cleanly(
    relay: Relay, local: LocalServer, connector: Connector
) -> None:
    base = await relay.path()
    for _ in range(5):
        assert (await relay.client.get(f"{base}/echo")).status_code == 200
    await eventually(lambda: connector.state.active_streams == 0)
    [tunnel] = relay.service.app.registry.tunnels()
    await eventually(lambda: tunnel.session.num_streams == 0)


async def test_a_slow_upload_is_not_cut_by_the_response_timeout(
    relay: Relay, local: LocalServer
) -> None:
    # The connector's response timeout counts from the request body's end: a body that
    # keeps flowing for longer than it (here 1 s against 0.3 s) gets its answer.
    forward = ForwardLimits(response_timeout=0.3, idle_timeout=2.0)
    async with running_connector(relay, local.url, forward=forward):
        base = await relay.path()
        chunk = pattern(10 * 1024)

        async def slowly() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield chunk
                await asyncio.sleep(0.1)

        response = await relay.client.post(f"{base}/upload", content=slowly())
        assert response.status_code == 200, response.text
        assert response.text == f"{10 * len(chunk)} {hashlib.sha256(chunk * 10).hexdigest()}"


async def test_a_stalled_client_does_not_hold_the_upstream_pool(
    relay: Relay, local: LocalServer
) -> None:
    # One pooled connection; a client that stops reading a long download stalls the
    # connector's writes to the relay. The send timeout cuts that exchange and frees the
    # connection, so the next request gets it instead of a 503 after the pool's wait.
    forward = ForwardLimits(send_timeout=0.5)
    pool = PoolLimits(max_connections=1, wait_timeout=3.0)
    async with running_connector(relay, local.url, forward=forward, pool_limits=pool) as conn:
        base = await relay.path()
        port = int(relay.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {base}/bytes/{256 * MIB} HTTP/1.1\r\nhost: relay\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        await eventually(lambda: conn.state.active_streams == 0)
        response = await relay.client.get(f"{base}/echo")
        assert response.status_code == 200
        assert local.bytes_sent < 256 * MIB
        writer.close()

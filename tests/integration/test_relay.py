"""The relay service end to end on loopback, on SQLite and on PostgreSQL: real HTTP
clients, and a host that is a real yamux client over a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from agent_relay.relay.auth import issue_token
from agent_relay.store import Store
from agent_relay.store.records import HostStatus
from tests.support.fakehost import FakeHost, pattern
from tests.support.pgcluster import PostgresCluster
from tests.support.relay import Relay, running_relay

MIB = 1024 * 1024


@pytest.fixture
def relay_database(database_url: str) -> str:
    """The `relay` fixture on both backends here (elsewhere SQLite)."""
    return database_url


@pytest.fixture
async def host(relay: Relay) -> AsyncIterator[FakeHost]:
    connected = await relay.host()
    yield connected
    await connected.close()


async def test_health_is_liveness_and_ready_reports_the_database(relay: Relay) -> None:
    response = await relay.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    ready = await relay.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "accepting_tunnels": True}


async def test_unknown_route_is_json_404(relay: Relay) -> None:
    response = await relay.client.get("/nope")
    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer a.b.c"],
)
async def test_connect_and_create_need_a_valid_token(
    relay: Relay, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await relay.client.get("/v1/relay/connect?machine_id=m", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]
    response = await relay.client.post(f"/v1/relay/create/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 401


async def test_websocket_connect_with_a_bad_token_is_refused(relay: Relay) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await ws_connect(
            relay.url.replace("http", "ws") + "/v1/relay/connect?machine_id=m",
            additional_headers={"Authorization": "Bearer nope"},
        )
    assert refused.value.response.status_code == 401


async def test_request_through_the_relay(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    response = await relay.client.post(f"{base}/echo?x=1&y=%20", content=b"ping")
    assert response.status_code == 200
    assert response.content == b"ping"
    assert response.headers["x-target"] == "/echo?x=1&y=%20"
    hosts = (await relay.client.get("/v1/hosts", headers=relay.auth())).json()["hosts"]
    assert [(h["machine_id"], h["online"], h["status"]) for h in hosts] == [
        ("machine-1", True, "online")
    ]
    # The status row follows the tunnel table through one batched writer (statuses.py).
    for _ in range(200):
        record = await relay.store.get_host(uuid.UUID(hosts[0]["id"]))
        assert record is not None
        if record.status is HostStatus.ONLINE:
            break
        await asyncio.sleep(0.02)
    assert record is not None
    assert record.status is HostStatus.ONLINE
    assert record.agent_version == "test"


async def test_empty_tail_becomes_root_and_uuids_in_any_case(relay: Relay, host: FakeHost) -> None:
    host_id = await relay.host_id()
    session = await relay.browser_session(host_id)
    response = await relay.client.get(f"/v1/relay/h/{str(host_id).upper()}/s/{session.upper()}")
    assert response.status_code == 404  # the fake host has no "/"
    assert host.requests[-1].target == b"/"


@pytest.mark.parametrize("path", ["/v1/relay/h/not-a-uuid/s/{s}/x", "/v1/relay/h/{h}/s/zzz/x"])
async def test_malformed_ids_are_400(relay: Relay, host: FakeHost, path: str) -> None:
    host_id = await relay.host_id()
    response = await relay.client.get(path.format(h=host_id, s=uuid.uuid4()))
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid")


async def test_proxy_checks_in_order(relay: Relay, host: FakeHost) -> None:
    host_id = await relay.host_id()
    session = await relay.browser_session(host_id)
    unknown = await relay.client.get(f"/v1/relay/h/{host_id}/s/{uuid.uuid4()}/echo")
    assert unknown.status_code == 401
    other = await relay.client.get(f"/v1/relay/h/{uuid.uuid4()}/s/{session}/echo")
    assert other.status_code == 403
    await host.close()
    for _ in range(100):
        gone = await relay.client.get(f"/v1/relay/h/{host_id}/s/{session}/echo")
        if gone.status_code == 404:
            break
        await asyncio.sleep(0.02)
    assert gone.status_code == 404
    assert gone.json() == {"error": "No active relay"}


async def test_create_for_someone_elses_host_is_403(relay: Relay, host: FakeHost) -> None:
    host_id = await relay.host_id()
    bob = await relay.store.add_user("bob")
    token = (await issue_token(relay.store, relay.secret, bob.id, timedelta(hours=1))).token
    response = await relay.client.post(f"/v1/relay/create/{host_id}", headers=relay.auth(token))
    assert response.status_code == 403


async def test_revoked_login_ends_its_relay_sessions(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    [auth_session_id] = await relay.store.revoke_user_auth_sessions(relay.user_id)
    assert auth_session_id
    relay.service.app.forget_all_sessions()
    response = await relay.client.get(f"{base}/echo")
    assert response.status_code == 401
    session_id = uuid.UUID(base.rsplit("/", 1)[1])
    context = await relay.store.load_proxy_context(session_id)
    assert context is not None
    assert context.revoked_at is not None


async def test_concurrent_requests_share_one_session_lookup(
    relay: Relay, host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expired cache entry under load costs one database round trip, not one per
    request in flight."""
    base = await relay.path()
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    store = relay.store
    load = store.load_proxy_context
    sessions: list[uuid.UUID] = []

    async def counted(session_id: uuid.UUID) -> object:
        sessions.append(session_id)  # the real query still runs
        return await load(session_id)

    monkeypatch.setattr(store, "load_proxy_context", counted)
    relay.service.app.forget_all_sessions()
    responses = await asyncio.gather(*(relay.client.get(f"{base}/echo") for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert sessions == [uuid.UUID(base.rsplit("/", 1)[1])]


async def test_large_upload_and_download_stream(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    body = random.randbytes(24 * MIB)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), MIB):
            yield body[start : start + MIB]

    upload = await relay.client.post(f"{base}/upload", content=chunks())
    assert upload.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"
    size = 64 * MIB
    digest = hashlib.sha256()
    received = 0
    async with relay.client.stream("GET", f"{base}/bytes/{size}") as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.digest() == hashlib.sha256(pattern(size)).digest()


async def test_host_reset_is_502(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    response = await relay.client.get(f"{base}/reset")
    assert response.status_code == 502
    assert response.json()["error"]
    assert (await relay.client.get(f"{base}/echo")).status_code == 200


async def test_upgrade_is_spliced_as_raw_bytes(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    port = relay.service.address[1] if relay.service.address else 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {base}/upgrade HTTP/1.1\r\nhost: relay\r\nconnection: upgrade\r\n"
        "upgrade: echo\r\n\r\nearly bytes ".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.write(b"and more")
    got = b""
    while len(got) < len(b"EARLY BYTES AND MORE"):
        got += await reader.read(100)
    assert got == b"EARLY BYTES AND MORE"
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()


async def test_per_host_stream_limit_gives_503(database_url: str) -> None:
    async with running_relay(database_url, max_streams_per_host=2) as relay:
        host = await relay.host()
        base = await relay.path()
        responses = await asyncio.gather(*(relay.client.get(f"{base}/sleep/0.5") for _ in range(3)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 200, 503]
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        await host.close()


async def test_host_that_never_answers_gives_504(database_url: str) -> None:
    async with running_relay(database_url, response_timeout=0.3) as relay:
        host = await relay.host()
        base = await relay.path()
        response = await relay.client.get(f"{base}/sleep/3")
        assert response.status_code == 504
        await host.close()


async def test_total_timeout_before_the_answer_is_504(database_url: str) -> None:
    async with running_relay(database_url, total_timeout=0.3) as relay:
        host = await relay.host()
        base = await relay.path()
        response = await relay.client.get(f"{base}/sleep/3")
        assert response.status_code == 504
        assert "total timeout" in response.json()["error"]
        await host.close()


async def test_a_body_that_stalls_is_cut_after_the_idle_timeout(database_url: str) -> None:
    async with running_relay(database_url, idle_timeout=0.3) as relay:
        host = await relay.host()
        base = await relay.path()
        async with relay.client.stream("GET", f"{base}/stall") as response:
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                await response.aread()  # 10 of 100 bytes, then the relay cuts it
        await host.close()


async def test_new_connection_replaces_and_closes_the_old(relay: Relay) -> None:
    first = await relay.host()
    base = await relay.path()
    second = await relay.host()
    assert first.session is not None
    await asyncio.wait_for(first.session.wait_closed(), 5)
    assert (await relay.client.get(f"{base}/echo")).status_code == 200
    assert len(second.requests) == 1
    assert len(first.requests) == 0
    await second.close()


async def test_host_goes_offline_when_it_disconnects(relay: Relay) -> None:
    host = await relay.host()
    host_id = await relay.host_id()
    await host.close()
    for _ in range(100):
        record = await relay.store.get_host(host_id)
        if record is not None and record.status is HostStatus.OFFLINE:
            break
        await asyncio.sleep(0.02)
    assert record is not None
    assert record.status is HostStatus.OFFLINE


async def test_client_disconnect_resets_the_stream(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    async with relay.client.stream("GET", f"{base}/bytes/{512 * MIB}") as response:
        assert response.status_code == 200
        await anext(response.aiter_raw())
    for _ in range(200):
        if host.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert host.in_flight == 0


async def test_cors_mirrors_the_origin(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    preflight = await relay.client.options(
        f"{base}/echo",
        headers={
            "Origin": "https://ui.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-vk-sig-ts, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
    assert preflight.headers["access-control-allow-methods"] == "PUT"
    assert preflight.headers["access-control-allow-headers"] == "x-vk-sig-ts, content-type"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    response = await relay.client.get(f"{base}/echo", headers={"Origin": "https://ui.example"})
    assert response.headers["access-control-allow-origin"] == "https://ui.example"
    exposed_list = response.headers["access-control-expose-headers"]
    exposed = {name.strip() for name in exposed_list.split(",")}
    # All the browser SDK reads on another origin (clients/browser/src/sdk/verify.ts).
    assert {
        "x-vk-resp-ts",
        "x-vk-resp-nonce",
        "x-vk-resp-signature",
        "x-vk-resp-body-signing",
        "x-vk-host-time",
    } <= exposed


async def test_every_options_is_answered_by_the_relay(relay: Relay, host: FakeHost) -> None:
    """As the reference: 200, empty body, no auth, never forwarded, preflight or not."""
    base = await relay.path()
    bare = await relay.client.options(f"{base}/echo", headers={"Origin": "https://ui.example"})
    assert (bare.status_code, bare.content) == (200, b"")
    assert bare.headers["access-control-allow-origin"] == "https://ui.example"
    assert bare.headers["access-control-allow-credentials"] == "true"
    assert "origin" in bare.headers["vary"].lower()
    # No session, no host, no token: still the relay's own answer.
    nobody = await relay.client.options(f"/v1/relay/h/{uuid.uuid4()}/s/{uuid.uuid4()}/x")
    assert (nobody.status_code, nobody.content) == (200, b"")
    assert (await relay.client.options("/v1/relay/connect")).status_code == 200
    assert host.requests == []
    response = await relay.client.get(f"{base}/echo", headers={"Origin": "https://ui.example"})
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert exposed >= {
        "x-vk-resp-ts",
        "x-vk-resp-nonce",
        "x-vk-resp-signature",
        "x-vk-resp-body-signing",
        "x-vk-host-time",
    }
    assert "origin" in response.headers["vary"].lower()


async def test_relay_responses_carry_the_standard_reason_phrase(relay: Relay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(relay.url.rpartition(":")[2]))
    try:
        writer.write(
            b"GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /nope HTTP/1.1\r\nhost: x\r\n\r\n"
        )
        async with asyncio.timeout(10):
            assert (await reader.readline()) == b"HTTP/1.1 200 OK\r\n"
            await reader.readuntil(b'{"status":"ok"}')
            assert (await reader.readline()) == b"HTTP/1.1 404 Not Found\r\n"
    finally:
        writer.close()


async def test_a_70_kb_request_head_passes(relay: Relay, host: FakeHost) -> None:
    """The reference passes request heads of 70 KB; ours did 431 past 16 KiB."""
    base = await relay.path()
    response = await relay.client.get(f"{base}/echo", headers={"x-big": "a" * 70_000})
    assert response.status_code == 200
    assert host.requests[-1].headers  # it reached the host
    assert dict(host.requests[-1].headers)[b"x-big"] == b"a" * 70_000


async def test_ready_is_503_while_draining_and_health_stays_200(relay: Relay) -> None:
    assert (await relay.client.get("/ready")).status_code == 200
    await relay.service.app.close(timeout=1)  # what SIGTERM does first: Go Away, drain
    ready = await relay.client.get("/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "database": "ok", "accepting_tunnels": False}
    assert (await relay.client.get("/health")).json() == {"status": "ok"}


async def test_ready_follows_the_database_and_health_does_not(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """A database blip makes the relay not ready (out of the Service), never not live
    (a liveness probe would restart it for nothing)."""
    name = postgres_url.rpartition("/")[2].partition("?")[0]
    async with running_relay(postgres_url) as relay:
        assert (await relay.client.get("/ready")).status_code == 200
        assert name.isidentifier()  # a name the cluster made; safe to put in SQL
        postgres_cluster.psql(
            f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false; '  # noqa: S608
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        )
        try:
            ready = await relay.client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["database"] == "unreachable"
            health = await relay.client.get("/health")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
        finally:
            postgres_cluster.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true;')
        assert (await relay.client.get("/ready")).status_code == 200


async def test_oversized_request_head_is_431(relay: Relay) -> None:
    response = await relay.client.get("/health", headers={"x-big": "a" * 200_000})
    assert response.status_code == 431
    assert response.json()["error"]


async def test_metrics(relay: Relay, host: FakeHost) -> None:
    base = await relay.path()
    await relay.client.get(f"{base}/echo")
    text = (await relay.client.get("/metrics")).text
    assert "agent_relay_tunnels 1.0" in text
    assert 'agent_relay_proxied_requests_total{status="200"} 1.0' in text
    assert "agent_relay_response_seconds_count 1.0" in text


async def test_graceful_shutdown_finishes_in_flight_requests(database_url: str) -> None:
    async with running_relay(database_url) as relay:
        host = await relay.host()
        base = await relay.path()
        pending = asyncio.create_task(relay.client.get(f"{base}/sleep/0.5"))
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(relay.service.stop())
        response = await pending
        assert response.status_code == 200
        await stopping
        assert host.session is not None
        await asyncio.wait_for(host.session.wait_closed(), 5)
        relay.service.stop = _noop  # type: ignore[method-assign]


async def _noop() -> None:
    return None


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_slow_client_on_a_huge_download_holds_memory_bounded(sqlite_url: str) -> None:
    """A 1 GiB download read slowly at first: the host is held back by the yamux window,
    nothing piles up in the relay, and the whole GiB arrives intact. (Not a database
    matter, so SQLite only.)"""
    size = 1024 * MIB
    received = 0
    digest = hashlib.sha256()
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        base = await relay.path()
        async with relay.client.stream("GET", f"{base}/bytes/{size}") as response:
            chunks = response.aiter_raw()
            while received < 4 * MIB:
                chunk = await anext(chunks)
                received += len(chunk)
                digest.update(chunk)
            baseline = rss_bytes()
            await asyncio.sleep(1.0)  # the client stalls; the host must stall too
            stalled = rss_bytes()
            peak = stalled
            async for chunk in chunks:
                received += len(chunk)
                digest.update(chunk)
                if received % (64 * MIB) < len(chunk):
                    peak = max(peak, rss_bytes())
        await host.close()
    assert received == size
    expected = hashlib.sha256()
    block = pattern(64 * 1024)
    for _ in range(size // len(block)):
        expected.update(block)
    assert digest.digest() == expected.digest()
    # Host, relay and client share this process: together they stay far below the body.
    assert stalled - baseline < 32 * MIB, f"stalled: +{(stalled - baseline) / MIB:.0f} MiB"
    assert peak - baseline < 64 * MIB, f"peak: +{(peak - baseline) / MIB:.0f} MiB"


async def test_refusing_a_big_body_unread_says_connection_close(relay: Relay) -> None:
    """A client must learn that the connection ends when its body is left unread."""
    response = await relay.client.post(f"/v1/relay/create/{uuid.uuid4()}", content=b"x" * (3 * MIB))
    assert response.status_code == 401
    assert response.headers["connection"] == "close"
    assert (await relay.client.get("/health")).status_code == 200


async def test_last_seen_is_refreshed_while_connected(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agent_relay.relay.statuses.RECONCILE_EVERY", 0.1)
    async with running_relay(database_url) as relay:
        host = await relay.host()
        host_id = await relay.host_id()
        first = await relay.store.get_host(host_id)
        for _ in range(100):  # the connect's status write is batched: it lands soon after
            if first is not None and first.last_seen_at is not None:
                break
            await asyncio.sleep(0.02)
            first = await relay.store.get_host(host_id)
        assert first is not None
        assert first.last_seen_at is not None
        refreshed = False
        for _ in range(100):
            await asyncio.sleep(0.05)
            later = await relay.store.get_host(host_id)
            assert later is not None
            assert later.last_seen_at is not None
            if later.last_seen_at > first.last_seen_at:
                refreshed = True
                break
        assert refreshed
        await host.close()


async def test_statuses_are_reset_at_start(database_url: str) -> None:
    """A relay that died with hosts marked online must not believe them at its next start."""
    store = await Store.open(database_url)
    user = await store.add_user("crashed")
    host_id = await store.upsert_host(user.id, "machine-9", "left online", None)
    await store.set_host_status(host_id, HostStatus.ONLINE)
    await store.close()
    async with running_relay(database_url) as relay:
        record = await relay.store.get_host(host_id)
        assert record is not None
        assert record.status is HostStatus.OFFLINE


async def test_a_slow_upload_is_not_cut_by_the_response_timeout(database_url: str) -> None:
    # The response timeout counts from the request body's end: a body that keeps flowing
    # for longer than it (here 1 s against 0.3 s) gets its answer.
    async with running_relay(database_url, response_timeout=0.3, idle_timeout=2.0) as relay:
        host = await relay.host()
        base = await relay.path()
        chunk = pattern(10 * 1024)

        async def slowly() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield chunk
                await asyncio.sleep(0.1)

        response = await relay.client.post(f"{base}/upload", content=slowly())
        assert response.status_code == 200, response.text
        assert response.text == f"{10 * len(chunk)} {hashlib.sha256(chunk * 10).hexdigest()}"
        await host.close()


async def test_a_client_that_stops_reading_is_cut_by_the_send_timeout(database_url: str) -> None:
    async with running_relay(database_url, send_timeout=0.5) as relay:
        host = await relay.host()
        base = await relay.path()
        port = int(relay.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {base}/bytes/{256 * MIB} HTTP/1.1\r\nhost: relay\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        (tunnel,) = relay.service.app.registry.tunnels()
        # The client reads nothing more: the relay's writes stop making progress, and
        # after the send timeout it cuts the client and resets the host's stream.
        for _ in range(250):
            if not tunnel.session.num_streams:
                break
            await asyncio.sleep(0.02)
        assert tunnel.session.num_streams == 0
        # Other requests go on as before.
        assert (await relay.client.get(f"{base}/echo")).status_code == 200
        received = 0
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024 * 1024):
                received += len(data)
        assert received < 256 * MIB
        writer.close()
        await host.close()

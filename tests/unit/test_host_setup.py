"""The connector's pure parts: the relay's connect URL, the upstream address, tokens, the
machine id, the headers sent to the local server, and the status line."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import h11
import pytest

from agent_relay.host.connector import _duration, _go_away
from agent_relay.host.dial import _describe_refusal, connect_url, control_channel_url
from agent_relay.host.forward import response_headers, upstream_request
from agent_relay.host.hostid import hosts_url
from agent_relay.host.identity import MACHINE_ID_FILE, load_machine_id
from agent_relay.host.service import parse_host_port
from agent_relay.host.status import ConnectorState, Phase
from agent_relay.host.upstream import PoolLimits, UpstreamTarget
from agent_relay.httpwire.codec import Request
from agent_relay.httpwire.connection import as_head
from agent_relay.tokens import CommandToken, FileToken, StaticToken, TokenError

# --------------------------------------------------------------------- relay URL


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://vk.cluster.derio.net", "wss://vk.cluster.derio.net/v1/relay/connect"),
        ("https://vk.cluster.derio.net/", "wss://vk.cluster.derio.net/v1/relay/connect"),
        ("http://127.0.0.1:8082", "ws://127.0.0.1:8082/v1/relay/connect"),
        ("HTTPS://relay.example:8443/base//", "wss://relay.example:8443/base/v1/relay/connect"),
        ("https://relay.example/a/b", "wss://relay.example/a/b/v1/relay/connect"),
        ("wss://relay.example", "wss://relay.example/v1/relay/connect"),
    ],
)
def test_control_channel_url(base: str, expected: str) -> None:
    assert control_channel_url(base) == expected


def test_connect_url_encodes_the_query() -> None:
    url = connect_url(
        "https://relay.example/", machine_id="m-1", name="Ada's box & co/é", agent_version="0.1.0"
    )
    assert url == (
        "wss://relay.example/v1/relay/connect"
        "?machine_id=m-1&name=Ada%27s%20box%20%26%20co%2F%C3%A9&agent_version=0.1.0"
    )


@pytest.mark.parametrize(
    "base",
    ["ftp://relay.example", "relay.example", "https://", "https://r.example/?x=1", "https://u:p@r"],
)
def test_bad_relay_urls_are_refused(base: str) -> None:
    with pytest.raises(ValueError, match="relay URL"):
        control_channel_url(base)


def test_hosts_url_follows_the_base() -> None:
    assert hosts_url("https://r.example/base/") == "https://r.example/base/v1/hosts"
    assert hosts_url("ws://127.0.0.1:1") == "http://127.0.0.1:1/v1/hosts"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b'{"error":"malformed token"}', "401 malformed token"),
        (403, b"forbidden", "403 forbidden"),
        (502, b"<html>" + b"x" * 300, "502 (no explanation from relay)"),
        (503, b"", "503 (no explanation from relay)"),
    ],
)
def test_refusals_are_described_plainly(status: int, body: bytes, expected: str) -> None:
    assert _describe_refusal(status, body) == expected


# --------------------------------------------------------------------- upstream


def test_upstream_targets() -> None:
    tcp = UpstreamTarget.parse("http://127.0.0.1:8081")
    assert (tcp.host, tcp.port, tcp.unix_path) == ("127.0.0.1", 8081, None)
    assert tcp.host_header == b"127.0.0.1:8081"
    assert UpstreamTarget.parse("http://localhost/").host_header == b"localhost"
    assert UpstreamTarget.parse("http://[::1]:9000").host_header == b"[::1]:9000"
    unix = UpstreamTarget.parse("unix:/run/agent.sock")
    assert (unix.unix_path, unix.url, unix.host_header) == (
        "/run/agent.sock",
        "unix:/run/agent.sock",
        b"localhost",
    )
    assert UpstreamTarget.parse("unix:///run/agent.sock").unix_path == "/run/agent.sock"


@pytest.mark.parametrize(
    "value",
    ["https://127.0.0.1:8081", "127.0.0.1:8081", "http://h:99999", "http://h:1/api", "unix:"],
)
def test_bad_upstreams_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="upstream"):
        UpstreamTarget.parse(value)


def test_status_listen_address() -> None:
    assert parse_host_port("127.0.0.1:8083", "--status-listen") == ("127.0.0.1", 8083)
    assert parse_host_port("[::1]:0", "--status-listen") == ("::1", 0)
    with pytest.raises(ValueError, match="--status-listen"):
        parse_host_port("8083", "--status-listen")


# --------------------------------------------------------------------- tokens


async def test_static_token() -> None:
    assert await StaticToken("  abc.def.ghi\n").get() == "abc.def.ghi"
    with pytest.raises(TokenError, match="empty"):
        StaticToken("  ")


async def test_token_file_is_read_on_every_call(tmp_path: Path) -> None:
    path = tmp_path / "token"
    source = FileToken(path)
    with pytest.raises(TokenError, match="cannot read token file"):
        await source.get()
    path.write_text("first\n")
    assert await source.get() == "first"
    path.write_text("second")
    assert await source.get() == "second"
    path.write_text("two words")
    with pytest.raises(TokenError, match="single-line"):
        await source.get()


async def test_token_command_is_run_on_every_call(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    counter.write_text("0")
    source = CommandToken(f"n=$(cat {counter}); echo $((n+1)) > {counter}; echo token-$n")
    assert await source.get() == "token-0"
    assert await source.get() == "token-1"


async def test_failing_token_commands_say_why() -> None:
    with pytest.raises(TokenError, match="status 3: no login"):
        await CommandToken("echo no login >&2; exit 3").get()
    with pytest.raises(TokenError, match="empty"):
        await CommandToken("true").get()
    with pytest.raises(TokenError, match="did not finish"):
        await CommandToken("sleep 5", timeout=0.1).get()


# --------------------------------------------------------------------- machine id


def test_machine_id_is_made_once_then_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_machine_id(data_dir)
    assert len(first) == 36
    assert load_machine_id(data_dir) == first
    path = data_dir / MACHINE_ID_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(data_dir) == [MACHINE_ID_FILE]  # no temporary file left


async def test_machine_id_made_concurrently_is_one_id(tmp_path: Path) -> None:
    ids = await asyncio.gather(*(asyncio.to_thread(load_machine_id, tmp_path) for _ in range(8)))
    assert len(set(ids)) == 1


def test_a_damaged_machine_id_is_reported(tmp_path: Path) -> None:
    (tmp_path / MACHINE_ID_FILE).write_text("two words\n")
    with pytest.raises(ValueError, match="remove it"):
        load_machine_id(tmp_path)


# --------------------------------------------------------------------- headers


def _request(headers: list[tuple[str, str]], target: str = "/api/x?y=1") -> Request:
    head = as_head(
        h11.Request(method="POST", target=target, headers=[("host", "relay.example"), *headers])
    )
    assert isinstance(head, Request)
    return head


def test_upstream_request_headers() -> None:
    request = _request(
        [
            ("X-VK-Relayed", "0"),
            ("x-vk-relayed", "no"),
            ("x-forwarded-host", "spoofed"),
            ("connection", "keep-alive, x-hop, content-length"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("content-length", "4"),
            ("x-vk-sig-ts", "123"),
        ]
    )
    sent = upstream_request(request, UpstreamTarget.parse("http://127.0.0.1:8081"))
    assert sent.target == b"/api/x?y=1"
    assert list(sent.headers) == [
        (b"host", b"127.0.0.1:8081"),
        (b"content-length", b"4"),  # named in Connection, but framing is never dropped
        (b"x-vk-sig-ts", b"123"),
        (b"x-forwarded-host", b"relay.example"),
        (b"x-vk-relayed", b"1"),
    ]


def test_upstream_request_keeps_upgrades_and_chunking() -> None:
    upgrade = _request([("connection", "Upgrade"), ("upgrade", "websocket")], target="/ws")
    headers = list(upstream_request(upgrade, UpstreamTarget.parse("unix:/s")).headers)
    assert (b"connection", b"upgrade") in headers
    assert (b"upgrade", b"websocket") in headers
    # An Upgrade header without Connection: upgrade is no upgrade request.
    stray = _request([("upgrade", "websocket")])
    assert b"upgrade" not in dict(upstream_request(stray, UpstreamTarget.parse("unix:/s")).headers)
    chunked = _request([("transfer-encoding", "chunked")])
    headers = list(upstream_request(chunked, UpstreamTarget.parse("unix:/s")).headers)
    assert (b"transfer-encoding", b"chunked") in headers


def test_response_headers_drop_hop_by_hop_and_let_h11_frame() -> None:
    headers = [
        (b"content-type", b"text/plain"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"10"),
        (b"connection", b"close, x-private"),
        (b"x-private", b"1"),
        (b"keep-alive", b"timeout=5"),
        (b"x-vk-resp-signature", b"sig"),
    ]
    assert response_headers(headers) == [
        (b"content-type", b"text/plain"),
        (b"x-vk-resp-signature", b"sig"),
    ]
    assert response_headers([(b"content-length", b"3")]) == [(b"content-length", b"3")]


# --------------------------------------------------------------------- status line


def test_status_lines() -> None:
    now = [1_700_000_000.0]
    state = ConnectorState(
        relay_url="wss://r.example/v1/relay/connect",
        machine_id="m",
        name="n",
        upstream="http://127.0.0.1:8081",
        clock=lambda: now[0],
    )
    state.phase = Phase.RETRYING
    state.error("401 invalid token")
    state.retry_at = now[0] + 4.2
    assert state.describe() == "retrying in 4.2 s: 401 invalid token"
    state.phase = Phase.CONNECTED
    state.connected_since = now[0]
    now[0] += 90
    assert state.describe() == (
        "connected to wss://r.example/v1/relay/connect since 2023-11-14T22:13:20Z"
    )
    snapshot = state.snapshot()
    assert snapshot["connected"] is True
    assert snapshot["connected_seconds"] == 90
    assert snapshot["next_retry_in_seconds"] is None
    assert snapshot["host_id"] is None


def test_durations_and_go_away_codes_read_well() -> None:
    assert [_duration(s) for s in (0.4, 59, 61, 3725)] == ["0 s", "59 s", "1 min 1 s", "1 h 2 min"]
    assert _go_away(0) == "normal"
    assert _go_away(1) == "protocol error"
    assert _go_away(9) == "code 9"


# --------------------------------------------------------------------- pool limits


def test_idle_connections_are_kept_up_to_the_connection_limit_by_default() -> None:
    assert PoolLimits(max_connections=16).idle_cap == 16
    assert PoolLimits(max_connections=16, max_idle=4).idle_cap == 4
    with pytest.raises(ValueError, match="max_idle"):
        PoolLimits(max_connections=2, max_idle=3)

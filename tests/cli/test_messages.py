"""Messages that say what to do: each is the exact one line the user sees."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from tests.support.cli_runner import Cli, one_line_error, usage_error
from tests.support.relay import Relay
from tests.support.trust_stack import trust_stack


def test_a_zero_ttl_is_refused_in_plain_words(cli: Cli) -> None:
    done = cli("tokens", "issue", "alice", "--ttl", "0")
    assert usage_error(done) == (
        "Invalid value for --ttl: a token must live more than 0 seconds and at most "
        "3650 days; got '0'"
    )


def test_a_host_name_no_pairing_has_says_what_is_stored(cli: Cli) -> None:
    done = cli("request", "--host", "my-pod", "/api/x")
    assert one_line_error(done) == "no stored pairing with a host named 'my-pod'; stored: none"


async def test_a_relay_url_that_is_not_a_relay(cli: Cli) -> None:
    from tests.support.localserver import local_server

    async with local_server() as other:  # an HTTP server, not a relay
        done = await asyncio.to_thread(
            cli, "pair", "--relay", other.url, "--code", "ABC123", "--token", "a.b.c"
        )
    assert one_line_error(done).startswith(
        f"{other.url} is not an agent-relay relay (GET /v1/hosts answered "
    )


def test_no_fitting_pairing_lists_what_is_stored(cli: Cli) -> None:
    # /v1 after the base URL is dropped, so the message shows the base URL.
    done = cli("request", "--relay", "http://127.0.0.1:9/v1", "/api/x")
    assert one_line_error(done) == (
        "no stored pairing fits: run agent-relay pair --relay URL --host HOST_ID --code CODE; "
        f"none stored in {cli.home / 'data' / 'pairings'}"
    )


async def test_https_against_a_plain_http_port(cli: Cli, relay: Relay) -> None:
    port = relay.url.rsplit(":", 1)[1]
    done = await asyncio.to_thread(
        cli, "pair", "--relay", f"https://127.0.0.1:{port}", "--host", str(uuid.uuid4()),
        "--code", "ABC123", "--token", relay.token,
    )  # fmt: skip
    assert one_line_error(done) == (
        f"that port speaks plain HTTP, not TLS: use http://127.0.0.1:{port}"
    )


async def test_a_wrong_code_says_it_is_used_up(cli: Cli, tmp_path: Path, sqlite_url: str) -> None:
    async with trust_stack(tmp_path, sqlite_url) as stack:
        right = stack.host.issue_code(time.time()).code
        wrong = "AAAAAA" if right != "AAAAAA" else "BBBBBB"
        args = ["--relay", stack.relay.url, "--host", stack.host_id, "--token", stack.relay.token]
        done = await asyncio.to_thread(cli, "pair", *args, "--code", wrong)
        assert one_line_error(done) == (
            "wrong code: it is now used up; make a new one with `agent-relay host pair-code` "
            "and pair again"
        )
        done = await asyncio.to_thread(cli, "pair", *args, "--code", right)
        assert one_line_error(done) == (
            "the host has no valid code (expired or already used): make a new one with "
            "`agent-relay host pair-code`"
        )


async def test_ws_to_a_route_that_does_not_upgrade(cli: Cli, tmp_path: Path, relay: Relay) -> None:
    from agent_relay.trust.host import TrustHost
    from tests.support.localserver import local_server
    from tests.support.trust_stack import connector_with_trust

    host = TrustHost.open(tmp_path / "host")
    async with local_server() as local, connector_with_trust(relay, local.url, host):
        host_id = str(await relay.host_id())
        code = host.issue_code(time.time()).code
        args = ["--relay", relay.url, "--token", relay.token, "--host", host_id]
        paired = await asyncio.to_thread(cli, "pair", *args, "--code", code)
        assert paired.returncode == 0, paired.stderr
        done = await asyncio.to_thread(cli, "ws", "/echo", *args)  # /echo answers 200
    assert one_line_error(done) == (
        "the local server did not upgrade to a WebSocket (it answered 200)"
    )
    assert len(done.stderr.strip().splitlines()) == 1  # no signing parameters shown


async def test_ws_the_local_server_refuses(cli: Cli, tmp_path: Path, sqlite_url: str) -> None:
    async with trust_stack(tmp_path, sqlite_url) as stack:
        code = stack.host.issue_code(time.time()).code
        args = ["--relay", stack.relay.url, "--token", stack.relay.token, "--host", stack.host_id]
        paired = await asyncio.to_thread(cli, "pair", *args, "--code", code)
        assert paired.returncode == 0, paired.stderr
        done = await asyncio.to_thread(cli, "ws", "/echo", *args)  # an HTTP-only route
    assert one_line_error(done) == "the local server refused a WebSocket at /echo (403)"

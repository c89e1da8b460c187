"""The operator's verbs against a real relay on loopback: the relay runs on a SQLite file
and the command works on the same file, as on one machine."""

from __future__ import annotations

import asyncio
import json

from tests.support.cli_runner import Cli, one_line_error
from tests.support.relay import Relay


def _db(sqlite_url: str) -> list[str]:
    return ["--database-url", sqlite_url]


async def test_hosts_list_and_remove(cli: Cli, relay: Relay, sqlite_url: str) -> None:
    host = await relay.host("machine-1")
    host_id = await relay.host_id("machine-1")
    listed = await asyncio.to_thread(cli, "hosts", "list", "--json", *_db(sqlite_url))
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert entry["id"] == str(host_id)
    assert (entry["name"], entry["owner"], entry["status"]) == ("fake", "alice", "online")
    refused = await asyncio.to_thread(cli, "hosts", "remove", "fake", *_db(sqlite_url))
    assert one_line_error(refused) == (
        f"host fake ({host_id}) is online: stop its connector first (or revoke its token), "
        "then remove it"
    )
    await host.close()
    for _ in range(200):  # the relay marks it offline once the tunnel is gone
        record = await relay.store.get_host(host_id)
        if record is not None and record.status.value == "offline":
            break
        await asyncio.sleep(0.02)
    removed = await asyncio.to_thread(cli, "hosts", "remove", "fake", *_db(sqlite_url))
    assert removed.returncode == 0, removed.stderr
    assert removed.stderr.strip() == f"removed host fake ({host_id})"
    assert await relay.store.get_host(host_id) is None
    gone = await asyncio.to_thread(cli, "hosts", "remove", str(host_id), *_db(sqlite_url))
    assert one_line_error(gone) == f"no host {str(host_id)!r} (see: agent-relay hosts list)"


async def test_tokens_list_shows_live_and_revoked(cli: Cli, relay: Relay, sqlite_url: str) -> None:
    listed = await asyncio.to_thread(cli, "tokens", "list", *_db(sqlite_url))
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    session_id, user, _issued, used, state = line.split("\t")
    assert (user, used, state) == ("alice", "used never", "live")
    revoked = await asyncio.to_thread(cli, "tokens", "revoke", "--session", session_id,
                                      *_db(sqlite_url))  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    none_live = await asyncio.to_thread(cli, "tokens", "list", *_db(sqlite_url))
    assert none_live.stdout == ""
    assert none_live.stderr.strip() == "no live tokens"
    every = await asyncio.to_thread(cli, "tokens", "list", "--all", *_db(sqlite_url))
    assert every.stdout.split("\t")[0] == session_id
    assert every.stdout.split("\t")[4].startswith("revoked ")


async def test_users_remove_ends_their_host_connection(
    cli: Cli, relay: Relay, sqlite_url: str
) -> None:
    host = await relay.host("machine-1")
    host_id = await relay.host_id("machine-1")
    done = await asyncio.to_thread(cli, "users", "remove", "alice", "--yes", *_db(sqlite_url))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"removed user alice ({relay.user_id})"
    assert host.session is not None
    for _ in range(500):  # the running relay cut the host's tunnel
        if host.session.closed:
            break
        await asyncio.sleep(0.02)
    assert host.session.closed
    assert await relay.store.get_host(host_id) is None
    assert await relay.store.list_users() == []
    again = await asyncio.to_thread(cli, "users", "remove", "alice", "--yes", *_db(sqlite_url))
    assert one_line_error(again) == "no user 'alice' (see: agent-relay users list)"
    await host.close()

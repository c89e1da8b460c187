"""Pairing as people do it: by host name or with no --host at all, again from the same
machine, and the client's own list of pairings."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tests.support.cli_runner import Cli, one_line_error
from tests.support.trust_stack import trust_stack


async def test_pair_without_host_then_by_name_then_forget(
    cli: Cli, tmp_path: Path, sqlite_url: str
) -> None:
    async with trust_stack(tmp_path, sqlite_url) as stack:
        relay = ["--relay", stack.relay.url, "--token", stack.relay.token]
        code = stack.host.issue_code(time.time()).code
        first = await asyncio.to_thread(cli, "pair", *relay, "--code", code)
        assert first.returncode == 0, first.stderr
        assert f"paired with host {stack.host_id} (test-host) at " in first.stderr
        # Asked by its name: the stored pairing answers.
        called = await asyncio.to_thread(cli, "request", "--host", "test-host", "/echo")
        assert called.returncode == 0, called.stderr
        assert json.loads(called.stdout)["path"] == "/echo"
        [old] = json.loads((await asyncio.to_thread(cli, "pairings", "list", "--json")).stdout)
        assert (old["host_id"], old["host_name"]) == (stack.host_id, "test-host")

        # Pairing again by name: the earlier client is named as stale, names differ.
        code = stack.host.issue_code(time.time()).code
        again = await asyncio.to_thread(cli, "pair", *relay, "--host", "test-host", "--code", code)
        assert again.returncode == 0, again.stderr
        assert again.stderr.strip().splitlines()[-1] == (
            f"this replaces the earlier pairing as client {old['client_id']}, which the host "
            f"still trusts: revoke it there with `agent-relay host clients revoke "
            f"{old['client_id']}`"
        )
        trusted = stack.host.list_clients()
        assert len(trusted) == 2
        assert trusted[0].client_name != trusted[1].client_name

        forgot = await asyncio.to_thread(cli, "pairings", "forget", "test-host")
        assert forgot.returncode == 0, forgot.stderr
        assert "forgot host " in forgot.stderr
        empty = await asyncio.to_thread(cli, "pairings", "list")
        assert (empty.stdout, empty.stderr.strip()) == ("", "no pairings")

        # By id: the name is still learned from the relay's list, for --host NAME later.
        code = stack.host.issue_code(time.time()).code
        by_id = await asyncio.to_thread(
            cli, "pair", *relay, "--host", stack.host_id, "--code", code
        )
        assert by_id.returncode == 0, by_id.stderr
        listed = await asyncio.to_thread(cli, "pairings", "list")
        assert listed.stdout.split("\t")[:2] == [stack.host_id, "test-host"]


async def test_pair_with_an_unknown_host_name_lists_the_hosts(
    cli: Cli, tmp_path: Path, sqlite_url: str
) -> None:
    async with trust_stack(tmp_path, sqlite_url) as stack:
        done = await asyncio.to_thread(
            cli, "pair", "--relay", stack.relay.url, "--token", stack.relay.token,
            "--host", "my-pod", "--code", "ABC123",
        )  # fmt: skip
        assert one_line_error(done) == (
            f"no host named 'my-pod' at the relay; its hosts: test-host ({stack.host_id}, online)"
        )

"""``agent-relay host`` as a process with the trust layer on (the default): a code from
``agent-relay host pair-code`` and from the local page, pairing through the real relay,
listing and revoking clients from the CLI while the connector runs."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import httpx

from agent_relay.host.identity import MACHINE_ID_FILE
from agent_relay.trust import wire
from agent_relay.trust.host import API_PREFIX
from tests.support.cli import Process, start_host
from tests.support.localserver import LocalServer
from tests.support.relay import Relay
from tests.support.trustpeer import Pairing, Peer


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from agent_relay.cli import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def pair(relay: Relay, base: str, code: str) -> Peer:
    pairing = Pairing(code)
    start = await relay.client.post(f"{base}{API_PREFIX}spake2/start", json=pairing.start_body())
    assert start.status_code == 200, start.text
    peer = Peer()
    body = peer.finish_body(pairing, start.json()["data"])
    finish = await relay.client.post(f"{base}{API_PREFIX}spake2/finish", json=body)
    assert finish.status_code == 200, finish.text
    peer.accept_finish(finish.json()["data"])
    return peer


async def test_pair_code_pairing_and_revocation_with_a_running_host(
    relay: Relay, local: LocalServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    host: Process = await start_host(
        "--relay",
        relay.url,
        "--upstream",
        local.url,
        "--token",
        relay.token,
        "--data-dir",
        str(data_dir),
        "--status-listen",
        "127.0.0.1:0",
        env={},
    )
    try:
        page_url = (await host.wait_for_line(r"pairing page: (http://\S+)")).group(1)
        await host.wait_for_line(r"connected to ws://")
        base = await relay.path((data_dir / MACHINE_ID_FILE).read_text().strip())
        assert (await relay.client.get(f"{base}/echo")).status_code == 401

        # A code from the CLI, used through the relay.
        status, out, _ = await cli("host", "pair-code", "--data-dir", str(data_dir))
        assert status == 0
        code = out.strip()
        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(page_url)
            assert code in page.text
            peer = await pair(relay, base, code)
            headers = peer.sign("POST", "/echo", b"hi", int(time.time()))
            answer = await relay.client.post(f"{base}/echo", content=b"hi", headers=headers)
            assert answer.status_code == 200
            nonce = headers[wire.SIG_NONCE]
            assert peer.check_response(200, dict(answer.headers), answer.content, "/echo", nonce)

            # A code from the local page (JSON), and a cross-site POST refused.
            made = await client.post(page_url.removesuffix("/") + "/pair-code")
            second = await pair(relay, base, made.json()["enrollment_code"])
            forged = await client.post(
                page_url.removesuffix("/") + "/pair-code",
                headers={"origin": "https://evil.example"},
            )
            assert forged.status_code == 403
            page = await client.get(page_url)
            assert peer.client_id in page.text
            assert second.client_id in page.text

        status, out, _ = await cli("host", "clients", "list", "--json", "--data-dir", str(data_dir))
        assert {c["client_id"] for c in json.loads(out)} == {peer.client_id, second.client_id}
        status, _, err = await cli(
            "host", "clients", "revoke", peer.client_id, "--data-dir", str(data_dir)
        )
        assert status == 0, err
        # The running host checks its store for another process's writes once a second
        # (trust/host.py SYNC_INTERVAL, docs/signing.md): refused within that, not at once.
        deadline = time.monotonic() + 3.0
        while True:
            headers = peer.sign("GET", "/echo", b"", int(time.time()))
            refused = await relay.client.get(f"{base}/echo", headers=headers)
            if refused.status_code != 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert refused.json().get("reason") == "client_revoked", (refused.status_code, refused.text)
        headers = second.sign("GET", "/echo", b"", int(time.time()))
        assert (await relay.client.get(f"{base}/echo", headers=headers)).status_code == 200
        status, _, err = await cli(
            "host", "clients", "revoke", peer.client_id, "--data-dir", str(data_dir)
        )
        assert status == 1
        assert "no paired client" in err
        host.process.send_signal(signal.SIGTERM)
        assert await host.wait(10) == 0
    finally:
        if host.process.returncode is None:
            host.process.kill()
            await host.process.wait()

"""The browser SDK end to end from Node against real processes: the relay, the sample
agent server and the host connector with signatures on (the e2e stack's command lines,
without --allow-unsigned), and a pairing code made with `agent-relay host pair-code`.
clients/browser/e2e/stack.e2e.mjs does the rest (pairing, signed requests, verified
streams, WebSocket, retries, a tampering proxy, revocation)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent_relay.demo.sample_server import blob_bytes
from agent_relay.keyfile import write_secret_file
from tests.e2e.stack import (
    USER,
    Process,
    admin,
    connector_command,
    free_port,
    get_json,
    relay_command,
    sample_server_command,
)

from .node import node_test

BLOB_SIZE = 3 * 1024 * 1024 + 123  # 49 records and a short one
E2E_TESTS = 12


def blob_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, 65536):
        digest.update(blob_bytes(offset, min(65536, size - offset)))
    return digest.hexdigest()


def test_sdk_against_real_relay_and_host(tmp_path: Path) -> None:
    run_stack(tmp_path, "e2e/stack.e2e.mjs", E2E_TESTS)


def test_sdk_against_a_host_without_signed_headers(tmp_path: Path) -> None:
    """A host that checks the reference's signed string only (the connector with
    AGENT_RELAY_SIGNED_HEADERS=0): the SDK never signs its headers, every request passes."""
    run_stack(
        tmp_path, "e2e/reference-host.e2e.mjs", 1, connector_env=["AGENT_RELAY_SIGNED_HEADERS=0"]
    )


def run_stack(
    tmp_path: Path, script: str, expected: int, connector_env: list[str] | None = None
) -> None:
    relay_port, sample_port, status_port = free_port(), free_port(), free_port()
    relay_data, host_data = tmp_path / "relay-data", tmp_path / "host-data"
    relay_url = f"http://127.0.0.1:{relay_port}"
    sample_url = f"http://127.0.0.1:{sample_port}"
    admin(relay_data, "users", "add", USER)
    token = admin(relay_data, "tokens", "issue", USER, "--ttl", "2h").strip()
    token_file = tmp_path / "token"
    write_secret_file(token_file, (token + "\n").encode())
    status_url = f"http://127.0.0.1:{status_port}/_relay/status"
    signed = [*(["env", *connector_env] if connector_env else [])] + [
        arg
        for arg in connector_command(relay_url, sample_url, token_file, status_port, host_data)
        if arg != "--allow-unsigned"
    ]

    def connected() -> bool:
        status = get_json(status_url)
        return bool(status and status["connected"] and status["host_id"])

    processes = [
        Process(
            "relay",
            relay_command(relay_port, relay_data),
            tmp_path,
            lambda: get_json(f"{relay_url}/health") is not None,
        ),
        Process(
            "sample-server",
            sample_server_command(sample_port, tmp_path / "sample.sqlite3"),
            tmp_path,
            lambda: get_json(f"{sample_url}/api/whoami") is not None,
        ),
        Process("connector", signed, tmp_path, connected),
    ]
    try:
        for process in processes:
            process.start()
        status = get_json(status_url)
        assert status is not None
        code = admin(host_data, "host", "pair-code").strip()
        run = node_test(
            script,
            env={
                "AR_RELAY_URL": relay_url,
                "AR_TOKEN": token,
                "AR_HOST_ID": str(status["host_id"]),
                "AR_CODE": code,
                "AR_BLOB_SIZE": str(BLOB_SIZE),
                "AR_BLOB_SHA256": blob_sha256(BLOB_SIZE),
            },
        )
        print(f"node --test e2e: {run.passed} passed, {run.failed} failed")
        logs = "\n".join(p.logs() for p in processes)
        assert run.returncode == 0, run.output[-10000:] + "\n" + logs[-6000:]
        assert run.failed == 0, run.output[-10000:]
        assert run.passed == expected, run.output[-10000:]
    finally:
        for process in reversed(processes):
            process.close()

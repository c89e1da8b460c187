"""Mixed pairings with the reference-like peers of ``tests/interop/refpeer`` (built by
``tests/interop/build.sh``): our relay with the reference-like host, and the
reference-like relay with our connector, each in front of the real sample server.

The stacks have the shape of :class:`.stack.Stack`, so the traffic tests run on them
unchanged; ``connector`` is whichever process plays the host.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx

from agent_relay.keyfile import write_secret_file
from agent_relay.relay.auth import JwtSecret, mint_token

from .stack import (
    USER,
    Process,
    Stack,
    admin,
    connector_command,
    free_port,
    get_json,
    relay_command,
    sample_server_command,
)

REF_PEER = Path(__file__).parents[1] / "interop" / "bin" / "ref-peer"
PAIRINGS = ("our-relay+ref-host", "ref-relay+our-connector")


def require_ref_peer() -> None:
    if not REF_PEER.exists():
        raise AssertionError(f"{REF_PEER} is missing: run tests/interop/build.sh first")


def ref_host_command(relay_url: str, token_file: Path, upstream: str) -> list[str]:
    return [
        str(REF_PEER),
        "host",
        "--relay",
        relay_url,
        "--token-file",
        str(token_file),
        "--machine-id",
        "ref-host-machine",
        "--name",
        "ref-host",
        "--upstream",
        upstream,
    ]


def ref_relay_command(port: int) -> list[str]:
    return [str(REF_PEER), "relay", "--listen", f"127.0.0.1:{port}"]


def _relay_hosts(relay_url: str) -> dict[str, str]:
    hosts = get_json(f"{relay_url}/_test/hosts")
    return hosts if isinstance(hosts, dict) else {}


EDGE_SERVER = Path(__file__).with_name("edgeserver.py")


def _upstream(root: Path, edge: bool) -> tuple[Process, str]:
    """The sample server, or with ``edge`` the edge-case server (edgeserver.py)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if edge:
        argv = [sys.executable, str(EDGE_SERVER), "--port", str(port)]
        return Process(
            "edge-server", argv, root, ready=lambda: get_json(f"{url}/echo-head") is not None
        ), url
    command = sample_server_command(port, root / "sample.sqlite3")
    return Process(
        "sample-server", command, root, ready=lambda: get_json(f"{url}/api/whoami") is not None
    ), url


@contextlib.contextmanager
def running_pairing(
    root: Path, pairing: str, *, relay_args: tuple[str, ...] = (), edge: bool = False
) -> Iterator[Stack]:
    """The local server, then the relay, then the host of ``pairing`` (``A+B``: relay A,
    host B, each ``our-…`` or ``ref-…``); a browser session. ``relay_args`` go to our
    relay; ``edge`` puts edgeserver.py in place of the sample server."""
    require_ref_peer()
    # The reference relay reads its secret from the environment: set for its spawn,
    # restored after, so later tests' relays do not inherit it.
    previous_secret = os.environ.get("VIBEKANBAN_REMOTE_JWT_SECRET")
    relay_kind, _, host_kind = pairing.partition("+")
    relay_port, status_port = free_port(), free_port()
    relay_url = f"http://127.0.0.1:{relay_port}"
    sample, sample_url = _upstream(root, edge)
    token_file = root / "token"
    if relay_kind == "our-relay":
        relay_data = root / "relay-data"
        admin(relay_data, "users", "add", USER)
        token = admin(relay_data, "tokens", "issue", USER, "--ttl", "2h").strip()
        relay = Process(
            "relay",
            [*relay_command(relay_port, relay_data), *relay_args],
            root,
            ready=lambda: get_json(f"{relay_url}/health") is not None,
        )
    elif relay_kind == "ref-relay":
        secret = JwtSecret.generate()
        os.environ["VIBEKANBAN_REMOTE_JWT_SECRET"] = base64.b64encode(secret.key).decode()
        token = mint_token(secret, uuid.uuid4(), uuid.uuid4(), timedelta(hours=2))
        relay = Process(
            "ref-relay",
            ref_relay_command(relay_port),
            root,
            ready=lambda: get_json(f"{relay_url}/health") is not None,
        )
    else:
        raise ValueError(pairing)
    if host_kind == "ref-host":
        upstream = sample_url.removeprefix("http://")
        host = Process(
            "ref-host",
            ref_host_command(relay_url, token_file, upstream),
            root,
            ready=lambda: _host_id(relay_kind, relay_url, token) is not None,
        )
    elif host_kind == "our-connector":
        host = Process(
            "connector",
            connector_command(relay_url, sample_url, token_file, status_port, root / "host-data"),
            root,
            ready=lambda: (
                _connector_connected(status_port)
                and _host_id(relay_kind, relay_url, token) is not None
            ),
        )
    else:
        raise ValueError(pairing)
    write_secret_file(token_file, (token + "\n").encode())
    processes = [sample, relay, host]
    stack = Stack(
        root=root,
        relay=relay,
        sample=sample,
        connector=host,
        relay_url=relay_url,
        sample_url=sample_url,
        status_url=f"http://127.0.0.1:{status_port}/_relay/status",
        token=token,
    )
    try:
        for process in processes:
            process.start()
        host_id = _host_id(relay_kind, relay_url, token)
        assert host_id is not None
        stack.host_id = host_id
        created = httpx.post(
            f"{relay_url}/v1/relay/create/{stack.host_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 200, created.text
        stack.base = f"{relay_url}/v1/relay/h/{stack.host_id}/s/{created.json()['session_id']}"
        yield stack
    finally:
        for process in reversed(processes):
            process.close()
        if previous_secret is None:
            os.environ.pop("VIBEKANBAN_REMOTE_JWT_SECRET", None)
        else:
            os.environ["VIBEKANBAN_REMOTE_JWT_SECRET"] = previous_secret


def _host_id(relay_kind: str, relay_url: str, token: str) -> str | None:
    """The id of the one host online at the relay, once there is one."""
    if relay_kind == "ref-relay":
        hosts = list(_relay_hosts(relay_url).values())
    else:
        hosts = [str(h["id"]) for h in _online_hosts(relay_url, token)]
    return hosts[0] if len(hosts) == 1 else None


def _connector_connected(status_port: int) -> bool:
    status = get_json(f"http://127.0.0.1:{status_port}/_relay/status")
    return bool(status and status.get("connected"))


def _online_hosts(relay_url: str, token: str) -> list[dict[str, object]]:
    try:
        answer = httpx.get(
            f"{relay_url}/v1/hosts", headers={"Authorization": f"Bearer {token}"}, timeout=2
        )
    except httpx.HTTPError:
        return []
    if answer.status_code != 200:
        return []
    hosts = answer.json().get("hosts", [])
    return [h for h in hosts if h.get("status") == "online"]

"""Several relay replicas as real processes on loopback: one throwaway PostgreSQL, N
`agent-relay server` processes sharing it (each with its replica link on a port of its
own), and Caddy in front as a round-robin load balancer. Hosts are in-process yamux hosts
(tests/support/fakehost.py) that reconnect through the balancer when their channel ends,
as the connector does, so many of them fit in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path

import httpx

from agent_relay.keyfile import write_secret_file
from agent_relay.relay.auth import JwtSecret, issue_token
from agent_relay.store import Store
from tests.support.caddy import find_caddy
from tests.support.fakehost import FakeHost
from tests.support.pgcluster import PostgresCluster

from .stack import AGENT_RELAY, Process, free_port, get_json

SHUTDOWN_TIMEOUT = 5
HOSTS_LIMIT_ENV = "AGENT_RELAY_MAX_HOSTS_PER_USER"
REPLICA_TTL = 2.0  # seconds: a killed replica's hosts are marked offline soon after


def relay_replica_command(
    port: int, link_port: int, database_url: str, secret_file: Path, data_dir: Path
) -> list[str]:
    return [
        str(AGENT_RELAY),
        "server",
        *("--listen", f"127.0.0.1:{port}"),
        *("--database-url", database_url),
        *("--jwt-secret-file", str(secret_file)),
        *("--data-dir", str(data_dir)),
        *("--replica-address", f"127.0.0.1:{link_port}"),
        *("--replica-listen", f"127.0.0.1:{link_port}"),
        *("--replica-ttl", str(REPLICA_TTL)),
        *("--shutdown-timeout", str(SHUTDOWN_TIMEOUT)),
    ]


@dataclass
class Replica:
    process: Process
    port: int
    link_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metric(self, name: str) -> float:
        """One sample of this replica's /metrics (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


@dataclass
class Group:
    root: Path
    cluster: PostgresCluster
    database_url: str
    secret: JwtSecret
    replicas: list[Replica]
    balancer_url: str
    caddy: subprocess.Popen[bytes]
    token: str = ""
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def sql(self, query: str) -> str:
        return self.cluster.psql(query, database=self.database_url.rsplit("/", 1)[1])

    def online_rows(self) -> int:
        return int(self.sql("SELECT count(*) FROM hosts WHERE status = 'online'").strip())

    def wait_ready(self, replica: Replica) -> None:
        replica.process.wait_ready()


def _caddyfile(root: Path, port: int, upstreams: list[str]) -> Path:
    path = root / "Caddyfile"
    path.write_text(
        f"""{{
	admin off
	auto_https off
	storage file_system {root / "caddy-state"}
	log {{
		output stderr
		level WARN
	}}
}}

http://127.0.0.1:{port} {{
	reverse_proxy {" ".join(upstreams)} {{
		lb_policy round_robin
		lb_try_duration 3s
		lb_try_interval 50ms
		fail_duration 2s
		flush_interval -1
	}}
}}
"""
    )
    return path


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError):
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        time.sleep(0.05)
    raise AssertionError(f"caddy did not start on {port}: {log.read_text()[-3000:]}")


def _is_ready(url: str) -> bool:
    return get_json(f"{url}/ready") is not None


@contextlib.contextmanager
def running_group(root: Path, cluster: PostgresCluster, count: int = 3) -> Iterator[Group]:
    database = cluster.create_database()
    database_url = cluster.url(database)
    secret = JwtSecret.generate()
    secret_file = root / "jwt-secret"
    write_secret_file(secret_file, (secret.to_base64() + "\n").encode())
    replicas: list[Replica] = []
    for index in range(count):
        port, link_port = free_port(), free_port()
        url = f"http://127.0.0.1:{port}"
        process = Process(
            f"relay-{index}",
            relay_replica_command(
                port, link_port, database_url, secret_file, root / f"relay-{index}"
            ),
            root,
            ready=partial(_is_ready, url),
        )
        replicas.append(Replica(process, port, link_port))
    caddy: subprocess.Popen[bytes] | None = None
    limit = os.environ.get(HOSTS_LIMIT_ENV)
    os.environ[HOSTS_LIMIT_ENV] = "1000"  # one user, hundreds of hosts
    try:
        for replica in replicas:
            replica.process.spawn()
        if limit is None:
            del os.environ[HOSTS_LIMIT_ENV]
        else:
            os.environ[HOSTS_LIMIT_ENV] = limit
        for replica in replicas:
            replica.process.wait_ready()
        balancer_port = free_port()
        caddyfile = _caddyfile(root, balancer_port, [f"127.0.0.1:{r.port}" for r in replicas])
        log = root / "caddy.log"
        with log.open("wb") as out:
            caddy = subprocess.Popen(
                [find_caddy(), "run", "--adapter", "caddyfile", "--config", str(caddyfile)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env={**os.environ, "HOME": str(root), "XDG_DATA_HOME": str(root / "xdg")},
            )
        _wait_port(balancer_port, caddy, log)
        group = Group(
            root,
            cluster,
            database_url,
            secret,
            replicas,
            f"http://127.0.0.1:{balancer_port}",
            caddy,
        )
        yield group
    finally:
        if caddy is not None:
            caddy.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                caddy.wait(10)
        for replica in replicas:
            replica.process.close()
        cluster.drop_database(database)


async def make_user(group: Group, name: str = "replicas") -> None:
    async with await Store.open(group.database_url) as store:
        user = await store.add_user(f"{name}-{uuid.uuid4().hex[:8]}")
        issued = await issue_token(store, group.secret, user.id, timedelta(hours=2))
    group.token, group.user_id = issued.token, user.id


class RoamingHost(FakeHost):
    """A host that comes back through ``url`` (the balancer) whenever its channel ends,
    after a short pause, as the connector does; it counts its connections."""

    def __init__(self, url: str, token: str, machine_id: str) -> None:
        super().__init__(url, token, machine_id)
        self.connections = 0
        self._roaming: asyncio.Task[None] | None = None
        self.stopped = False

    async def start(self) -> None:
        await self._connect_retrying()
        self._roaming = asyncio.create_task(self._roam())

    async def _connect_retrying(self) -> None:
        for _ in range(200):
            try:
                await self.connect()
                self.connections += 1
                return
            except Exception:
                await asyncio.sleep(0.05 + random.random() * 0.1)
        raise AssertionError("host could not connect")

    async def _roam(self) -> None:
        while not self.stopped:
            assert self.session is not None
            await self.session.wait_closed()
            if self.stopped:
                return
            if self._serving is not None:
                self._serving.cancel()
            await asyncio.sleep(0.02 + random.random() * 0.05)
            await self._connect_retrying()

    async def stop(self) -> None:
        self.stopped = True
        if self._roaming is not None:
            self._roaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._roaming
        await self.close()


def auth(group: Group) -> dict[str, str]:
    return {"Authorization": f"Bearer {group.token}"}


async def host_ids(client: httpx.AsyncClient, group: Group) -> dict[str, uuid.UUID]:
    """machine id -> host id of the hosts the database says are online."""
    hosts = (await client.get(f"{group.balancer_url}/v1/hosts", headers=auth(group))).json()
    return {h["machine_id"]: uuid.UUID(h["id"]) for h in hosts["hosts"] if h["online"]}


async def session_path(client: httpx.AsyncClient, group: Group, host_id: uuid.UUID) -> str:
    response = await client.post(
        f"{group.balancer_url}/v1/relay/create/{host_id}", headers=auth(group)
    )
    assert response.status_code == 200, response.text
    return f"/v1/relay/h/{host_id}/s/{response.json()['session_id']}"


async def wait_online(
    client: httpx.AsyncClient, group: Group, machines: list[str], timeout: float = 20
) -> dict[str, uuid.UUID]:
    deadline = time.monotonic() + timeout
    while True:
        ids = await host_ids(client, group)
        if all(m in ids for m in machines):
            return ids
        if time.monotonic() > deadline:
            missing = [m for m in machines if m not in ids]
            raise AssertionError(f"{len(missing)} host(s) never came online: {missing[:5]}")
        await asyncio.sleep(0.1)

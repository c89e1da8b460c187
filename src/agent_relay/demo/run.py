"""``agent-relay demo``: the whole system in one process, with no outside services.

A relay on SQLite, the sample agent server, a user and token, and a host connector that
dials the relay and serves the sample server. The connector checks signatures as it does
in production, so the demo also issues a pairing code and prints the client commands
that pair and call through the relay, and the local pairing page to open; with
``--allow-unsigned`` it prints a page to open through the relay and plain ``curl`` lines
instead. It runs until Ctrl-C (or SIGTERM), when everything stops in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shlex
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ..aio import stop_signals
from ..host.connector import Connector, ConnectorConfig
from ..host.identity import load_machine_id
from ..host.status import PAGE_PATH, StatusServer
from ..host.tokens import StaticToken
from ..host.upstream import UpstreamPool, UpstreamTarget
from ..keyfile import read_secret_file, write_secret_file
from ..relay.auth import JwtSecret, issue_token
from ..relay.config import RelayConfig
from ..relay.service import RelayService
from ..store import Store
from ..trust.host import TrustHost
from .sample_server import RunningServer, create_app

log = logging.getLogger(__name__)

DEMO_USER = "demo"
SHUTDOWN_TIMEOUT = 5.0  # a demo stops promptly, even with event streams open
SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name


@dataclass(frozen=True, slots=True)
class DemoUrls:
    relay: str
    sample_server: str
    host_id: uuid.UUID
    browse: str  # the sample server's page through the relay
    token: str
    data_dir: Path
    pairing_page: str | None = None  # None: the trust layer is off (--allow-unsigned)
    code: str | None = None
    code_minutes: int = 0


def _secret(data_dir: Path) -> JwtSecret:
    path = data_dir / SECRET_FILE
    if path.exists():
        return JwtSecret.from_base64(read_secret_file(path).decode("ascii", "replace"))
    secret = JwtSecret.generate()
    write_secret_file(path, (secret.to_base64() + "\n").encode())
    return secret


async def _wait_for_host(store: Store, user_id: uuid.UUID, machine_id: str) -> uuid.UUID:
    async with asyncio.timeout(30):
        while True:
            for host in await store.list_hosts_for_user(user_id):
                if host.machine_id == machine_id and host.status == "online":
                    return host.id
            await asyncio.sleep(0.05)


class Demo:
    def __init__(
        self, data_dir: Path, *, port: int, host: str = "127.0.0.1", allow_unsigned: bool = False
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = host
        self.allow_unsigned = allow_unsigned
        self._status: StatusServer | None = None
        self._store: Store | None = None
        self._relay: RelayService | None = None
        self._sample: RunningServer | None = None
        self._connector: Connector | None = None
        self._connector_task: asyncio.Task[None] | None = None

    async def start(self) -> DemoUrls:
        data_dir = self.data_dir
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        secret = _secret(data_dir)
        store = self._store = await Store.open(None, data_dir=data_dir)
        user = await store.get_user(DEMO_USER) or await store.add_user(DEMO_USER)
        issued = await issue_token(store, secret, user.id, timedelta(days=30))

        config = RelayConfig(
            listen_host=self.host,
            listen_port=self.port,
            jwt_secret=secret,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        self._relay = RelayService(config, store)
        await self._relay.start()

        self._sample = RunningServer(create_app(data_dir / "sample-agent.sqlite3"))
        sample_port = await self._sample.start()
        sample_url = f"http://127.0.0.1:{sample_port}"

        machine_id = load_machine_id(data_dir)
        pool = UpstreamPool(UpstreamTarget.parse(sample_url))
        trust = None if self.allow_unsigned else TrustHost(data_dir / "host")
        self._connector = Connector(
            ConnectorConfig(
                relay_url=self._relay.url,
                machine_id=machine_id,
                name="demo-host",
                look_up_host_id=False,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
            ),
            StaticToken(issued.token),
            pool,
            trust=trust,
        )
        self._connector_task = asyncio.create_task(self._connector.run())
        host_id = await _wait_for_host(store, user.id, machine_id)
        session_id = await store.create_browser_session(host_id, user.id, issued.auth_session_id)
        browse = f"{self._relay.url}/v1/relay/h/{host_id}/s/{session_id}/"
        urls = DemoUrls(self._relay.url, sample_url, host_id, browse, issued.token, data_dir)
        if trust is None:
            return urls
        self._status = StatusServer(self._connector.snapshot, trust=trust)
        status_host, status_port = await self._status.start(self.host, 0)
        code = trust.issue_code()
        return dataclasses.replace(
            urls,
            pairing_page=f"http://{status_host}:{status_port}{PAGE_PATH}",
            code=code.code,
            code_minutes=round(trust.limits.code_ttl / 60),
        )

    async def stop(self) -> None:
        """Host first (finishing its requests), then the relay, then the sample server."""
        if self._status is not None:
            await self._status.stop()
        if self._connector is not None:
            await self._connector.stop()
        if self._connector_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector_task
        if self._relay is not None:
            await self._relay.stop()  # closes the store too
        if self._sample is not None:
            await self._sample.stop()


def _command() -> str:
    """How to run agent-relay from a shell: the script beside this interpreter if there
    is one (a venv's bin/), else the name on the PATH."""
    script = Path(sys.executable).parent / "agent-relay"
    return shlex.quote(str(script)) if script.exists() else "agent-relay"


def banner(urls: DemoUrls) -> str:
    if urls.pairing_page is None:
        return _unsigned_banner(urls)
    cli = _command()
    client_dir = shlex.quote(str(urls.data_dir / "client"))
    return "\n".join(
        [
            "",
            "agent-relay demo is running: relay (SQLite) + sample agent server + connected host",
            "",
            f"  relay:                 {urls.relay}   (health: {urls.relay}/health)",
            f"  sample agent server:   {urls.sample_server}   (direct, for comparison)",
            f"  host id:               {urls.host_id}",
            "",
            "Open the host's local pairing page (pairing codes, paired clients):",
            f"  {urls.pairing_page}",
            "",
            f"The host only answers paired clients. Pairing code: {urls.code}"
            f"  (valid {urls.code_minutes} min, one attempt; the page makes new ones)",
            "",
            "Pair, then call through the relay (every request signed, every answer verified):",
            f"  export AGENT_RELAY_DATA_DIR={client_dir}",
            f"  export AGENT_RELAY_TOKEN={urls.token}",
            f"  {cli} pair --relay {urls.relay} --host {urls.host_id} --code {urls.code}",
            f"  {cli} request /api/workspaces",
            f'  {cli} request POST /api/workspaces -d \'{{"name": "from the demo"}}\'',
            f"  {cli} request /api/events          # server-sent events, verified as they come",
            f"  {cli} ws /api/terminal             # type a line, the terminal echoes it",
            "",
            "Unsigned calls are refused by the host:",
            f"  curl -s {urls.browse}api/workspaces",
            "(agent-relay demo --allow-unsigned turns the checks off for browsing with curl.)",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


def _unsigned_banner(urls: DemoUrls) -> str:
    api = urls.browse + "api/workspaces"
    return "\n".join(
        [
            "",
            "agent-relay demo is running: relay (SQLite) + sample agent server + connected host",
            "",
            f"  relay:                 {urls.relay}   (health: {urls.relay}/health)",
            f"  sample agent server:   {urls.sample_server}   (direct, for comparison)",
            f"  host id:               {urls.host_id}",
            "",
            "The host's signature checks are OFF (--allow-unsigned). Open through the relay:",
            f"  {urls.browse}",
            "",
            "Try:",
            f"  curl -s {api}",
            f"  curl -sN {urls.browse}api/events          # server-sent events, stays open",
            f"  curl -s -H 'Authorization: Bearer {urls.token}' {urls.relay}/v1/hosts",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


async def run_demo(data_dir: Path, *, port: int, allow_unsigned: bool = False) -> None:
    demo = Demo(data_dir, port=port, allow_unsigned=allow_unsigned)
    try:
        with stop_signals() as stop:
            urls = await demo.start()
            print(banner(urls), flush=True)
            await stop.wait()
        log.info("stopping the demo")
    finally:
        await demo.stop()

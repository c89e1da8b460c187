"""The WebRTC fallback: the host (connector with its aiortc answerer, and its local server)
runs in a network namespace this test creates, reached over a veth pair, with every UDP
packet dropped by iptables inside it. The upgrade must fail within its bound and every call
must still succeed through the relay. Needs root, ip and iptables (scripts/netns-tools.sh);
without them the test fails, it does not skip."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent_relay.client import KeyStore, RelayClient
from agent_relay.trust import TrustHost
from agent_relay.webrtc.offerer import P2PClient, P2POptions
from tests.support.relay import Relay, running_relay

pytestmark = pytest.mark.timeout(120)

BIN = Path(sys.executable).parent


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def udp_less_namespace() -> Iterator[tuple[str, str, str]]:
    """A namespace joined to ours by a veth pair, UDP dropped inside; yields (name, our
    address, its address)."""
    tag = uuid.uuid4().hex[:6]
    name, outside, inside = f"wrtc-{tag}", f"wo{tag}", f"wi{tag}"
    octet = 16 + int(tag[:2], 16) % 200
    ours, theirs = f"10.231.{octet}.1", f"10.231.{octet}.2"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", name)
        _run("ip", "addr", "add", f"{ours}/30", "dev", outside)
        _run("ip", "link", "set", outside, "up")
        ns = ("ip", "netns", "exec", name)
        _run(*ns, "ip", "addr", "add", f"{theirs}/30", "dev", inside)
        _run(*ns, "ip", "link", "set", inside, "up")
        _run(*ns, "ip", "link", "set", "lo", "up")
        for chain in ("INPUT", "OUTPUT"):
            _run(*ns, "iptables", "-A", chain, "-p", "udp", "-j", "DROP")
        yield name, ours, theirs
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "link", "del", outside)
        _run("ip", "netns", "del", name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def host_in(namespace: str, relay: Relay, data_dir: Path) -> AsyncIterator[None]:
    ns = ["ip", "netns", "exec", namespace]
    port = _free_port()
    site = data_dir / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello from the namespace\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    local = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited)
        [*ns, sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=site,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = (data_dir / "host.log").open("wb")
    host = subprocess.Popen(  # noqa: ASYNC220
        [
            *ns,
            str(BIN / "agent-relay"),
            "host",
            "--relay",
            relay.url,
            "--upstream",
            f"http://127.0.0.1:{port}",
            "--token",
            relay.token,
            "--data-dir",
            str(data_dir / "host"),
            "--p2p",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        for process in (host, local):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


async def online_host(relay: Relay, log: Path) -> str:
    """The id of the one host (its machine id is its own), once it is online."""
    for _ in range(300):
        hosts = (await relay.client.get("/v1/hosts", headers=relay.auth())).json()["hosts"]
        for host in hosts:
            if host["online"]:
                return str(host["id"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"the host never came online: {log.read_text()[-2000:]}")  # noqa: ASYNC240


async def test_udp_dropped_the_upgrade_fails_in_time_and_calls_use_the_relay(
    tmp_path: Path, sqlite_url: str
) -> None:
    with udp_less_namespace() as (namespace, ours, _):
        async with (
            running_relay(sqlite_url, listen_host=ours) as relay,
            host_in(namespace, relay, tmp_path),
        ):
            host_id = await online_host(relay, tmp_path / "host.log")
            code = TrustHost.open(tmp_path / "host").issue_code(time.time()).code
            pairing = await RelayClient.pair(
                relay.url, host_id, code, token=relay.token, store=KeyStore(tmp_path / "client")
            )
            async with RelayClient(pairing, token=relay.token) as relay_client:
                client = P2PClient(relay_client, P2POptions(open_timeout=5.0))
                try:
                    start = time.monotonic()
                    assert not await client.upgrade()
                    took = time.monotonic() - start
                    assert "did not open in time" in (client.last_error or "")
                    assert took < 5.0 + 5.0  # the open bound, plus the signed offer's round trip
                    for _ in range(5):
                        answer = await client.request("GET", "/hello.txt")
                        assert answer.path == "relayed"
                        assert answer.status == 200
                        assert answer.body == b"hello from the namespace\n"
                    await asyncio.sleep(0)
                finally:
                    await client.aclose()
        log = (tmp_path / "host.log").read_text()
        assert "webrtc" in log or "host connector" in log, log[-2000:]

"""TLS end to end, as deployed: Caddy terminates TLS (a throwaway CA, certificate
verification on everywhere) and splits paths as the Traefik IngressRoute does —
``/v1/relay/*`` to the relay, the rest to another server (the remote API). The connector
runs as the ``agent-relay host`` process and dials ``wss://`` through Caddy; an HTTP
request and a WebSocket then go from a client through Caddy, the relay and the connector
to the local agent server and back."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from agent_relay.doctor import Options, Status, diagnose, format_report
from agent_relay.host.dial import DialError, connect_url, dial
from agent_relay.host.identity import MACHINE_ID_FILE
from tests.support.caddy import Caddy, running_caddy
from tests.support.cli import start_host
from tests.support.relay import Relay
from tests.support.tlsca import CertificateFiles, make_certificates


@contextlib.asynccontextmanager
async def http_and_websocket_server(name: str) -> AsyncIterator[Server]:
    """A real server on loopback: WebSocket echo at ``/ws``; any other request gets
    ``{name}: {path}`` as plain HTTP."""

    def answer(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.partition("?")[0] == "/ws":
            return None  # go on with the WebSocket handshake
        return connection.respond(200, f"{name}: {request.path}")

    async def echo(websocket: ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with serve(echo, "127.0.0.1", 0, process_request=answer) as server:
        yield server


def address(server: Server) -> str:
    host, port = next(iter(server.sockets)).getsockname()[:2]
    return f"{host}:{port}"


@pytest.fixture
def certificates(tmp_path: Path) -> CertificateFiles:
    return make_certificates(tmp_path / "tls")


@pytest.fixture
async def caddy(
    relay: Relay, certificates: CertificateFiles, tmp_path: Path
) -> AsyncIterator[Caddy]:
    async with (
        http_and_websocket_server("remote api") as rest,
        running_caddy(
            tmp_path / "caddy",
            certificates,
            relay=relay.url.removeprefix("http://"),
            rest=address(rest),
        ) as running,
    ):
        yield running


async def test_connector_dials_wss_through_caddy_and_requests_go_through(
    relay: Relay, caddy: Caddy, certificates: CertificateFiles, tmp_path: Path
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificates.ca))
    async with httpx.AsyncClient(base_url=caddy.url, verify=trusted, timeout=15) as client:
        # The catch-all goes to the other server, as the IngressRoute's second rule.
        other = await client.get("/projects")
        assert other.status_code == 200
        assert other.text == "remote api: /projects"

        async with http_and_websocket_server("agent") as agent:
            data_dir = tmp_path / "host"
            host = await start_host(
                "--relay",
                caddy.url,
                "--ca-file",
                str(certificates.ca),
                "--upstream",
                f"http://{address(agent)}",
                "--data-dir",
                str(data_dir),
                "--shutdown-timeout",
                "2",
                # This test is about the transport; signed calls are tested in test_trust_*.
                "--allow-unsigned",
                env={"AGENT_RELAY_TOKEN": relay.token},
            )
            try:
                await host.wait_for_line(
                    rf"connected to wss://localhost:{caddy.port}/v1/relay/connect since ", 15
                )
                host_id = await relay.host_id((data_dir / MACHINE_ID_FILE).read_text().strip())
                created = await client.post(f"/v1/relay/create/{host_id}", headers=relay.auth())
                assert created.status_code == 200, created.text
                base = f"/v1/relay/h/{host_id}/s/{created.json()['session_id']}"

                answer = await client.get(f"{base}/api/info?x=1")
                assert answer.status_code == 200
                assert answer.text == "agent: /api/info?x=1"

                wss = caddy.url.replace("https://", "wss://") + f"{base}/ws"
                async with ws_connect(wss, ssl=trusted, open_timeout=10) as websocket:
                    for message in ("hello", b"\x00binary\xff" * 1000):
                        await websocket.send(message)
                        assert await asyncio.wait_for(websocket.recv(), 10) == message

                # doctor from the outside sees the same: TLS verified with the CA, the
                # relay's route free of auth proxies, the token good, the host online
                # (asked through a relay session: /v1/hosts goes to the other server).
                report = await diagnose(
                    Options(
                        caddy.url,
                        token=relay.token,
                        host_id=str(host_id),
                        ca_file=certificates.ca,
                    )
                )
                found = {f.check: f for f in report.findings}
                assert not report.failed, format_report(report)
                assert found["tls"].status is Status.OK
                assert found["health"].status is Status.WARN  # the catch-all's /health
                assert found["host"].message.startswith(f"host {host_id} is connected")
                assert found["clock"].status is Status.OK
            finally:
                if host.process.returncode is None:
                    host.process.terminate()
                    await host.wait(10)


async def test_certificate_verification_is_on(relay: Relay, caddy: Caddy) -> None:
    """Without the CA the same dial fails, and says why; so does doctor."""
    url = connect_url(caddy.url, machine_id="m", name="n", agent_version="0")
    with pytest.raises(DialError, match="TLS certificate not trusted"):
        await dial(url, relay.token, open_timeout=10)
    report = await diagnose(Options(caddy.url, token=relay.token))
    tls = next(f for f in report.findings if f.check == "tls")
    assert tls.status is Status.FAIL
    assert tls.message.startswith("the certificate is not trusted")
    assert tls.hint is not None
    assert "--ca-file" in tls.hint

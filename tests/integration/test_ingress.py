"""The seed's deployment, carrying real traffic: Caddy with routes generated from the
shipped IngressRoute (tests/integration/ingress.py) in front of a relay and a stand-in web
UI, the web UI behind forward-auth (a stand-in auth service that answers a request
without a session cookie with a redirect to its login page, as Authentik does), TLS from
a throwaway CA. Through it: the connector's ``wss://`` connect (trust mode, as deployed),
the Python client's pairing (``agent-relay pair``) and then, with the client SDK, a
signed request, a 100 MiB download (hash-checked), server-sent events arriving live and
a WebSocket through both hops. And the seed's top self-host failure: forward-auth moved
onto the relay's route, the connector cannot connect and ``agent-relay doctor`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from agent_relay.client import KeyStore, RelayClient
from agent_relay.demo.sample_server import RunningServer, blob_bytes, create_app
from agent_relay.host.identity import MACHINE_ID_FILE

from .caddy import Caddy
from .ingress import (
    Doc,
    caddy_routes,
    load_ingress,
    move_forward_auth_to_relay_route,
    parse_rule,
    running_ingress,
)
from .test_host_cli import Process, start_host
from .test_relay import Relay, running_relay
from .tlsca import CertificateFiles, make_certificates

MIB = 1024 * 1024
DOWNLOAD = 100 * MIB
SESSION_COOKIE = "authentik_session=valid"
LOGIN_PAGE = "https://auth.example.test/login"


def address(server: Server) -> str:
    host, port = next(iter(server.sockets)).getsockname()[:2]
    return f"{host}:{port}"


@contextlib.asynccontextmanager
async def auth_service() -> AsyncIterator[Server]:
    """Stand-in for Authentik's forward-auth endpoint: 200 with the user's headers for a
    request carrying the session cookie, else a redirect to the login page."""

    def answer(connection: ServerConnection, request: Request) -> Response:
        if SESSION_COOKIE in request.headers.get("Cookie", ""):
            response = connection.respond(200, "")
            response.headers["X-authentik-username"] = "alice"
            response.headers["X-authentik-email"] = "alice@example.test"
            return response
        response = connection.respond(302, "")
        response.headers["Location"] = LOGIN_PAGE
        return response

    async with serve(lambda _: asyncio.sleep(0), "127.0.0.1", 0, process_request=answer) as s:
        yield s


@contextlib.asynccontextmanager
async def web_ui() -> AsyncIterator[Server]:
    """Stand-in for the remote web UI and API: says which user forward-auth let in."""

    def answer(connection: ServerConnection, request: Request) -> Response:
        user = request.headers.get("X-authentik-username", "-")
        return connection.respond(200, f"web ui: {request.path} user={user}")

    async with serve(lambda _: asyncio.sleep(0), "127.0.0.1", 0, process_request=answer) as s:
        yield s


@dataclass
class Stack:
    relay: Relay
    caddy: Caddy
    certificates: CertificateFiles
    agent_port: int
    tmp: Path

    @property
    def trusted(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificates.ca))

    def env(self) -> dict[str, str]:
        return {"AGENT_RELAY_CA_FILE": str(self.certificates.ca)}

    async def start_connector(self, data_dir: Path) -> Process:
        return await start_host(
            "--relay",
            self.caddy.url,
            "--upstream",
            f"http://127.0.0.1:{self.agent_port}",
            "--data-dir",
            str(data_dir),
            "--shutdown-timeout",
            "2",
            env={"AGENT_RELAY_TOKEN": self.relay.token, **self.env()},
        )


@contextlib.asynccontextmanager
async def ingress_stack(tmp_path: Path, documents: list[Doc]) -> AsyncIterator[Stack]:
    certificates = make_certificates(tmp_path / "tls")
    agent = RunningServer(create_app(tmp_path / "agent.sqlite3", tick_seconds=60))
    agent_port = await agent.start()
    try:
        async with (
            running_relay(f"sqlite:///{tmp_path / 'relay.sqlite3'}") as relay,
            auth_service() as auth,
            web_ui() as ui,
            running_ingress(
                tmp_path / "caddy",
                certificates,
                documents=documents,
                upstreams={8082: relay.url.removeprefix("http://"), 8081: address(ui)},
                auth=address(auth),
            ) as caddy,
        ):
            yield Stack(relay, caddy, certificates, agent_port, tmp_path)
    finally:
        await agent.stop()


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    import os

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from agent_relay.cli import main; main()",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def stop(host: Process) -> None:
    if host.process.returncode is None:
        host.process.terminate()
        await host.wait(10)


async def test_the_split_keeps_the_login_off_the_relay_route(tmp_path: Path) -> None:
    async with (
        ingress_stack(tmp_path, load_ingress()) as stack,
        httpx.AsyncClient(base_url=stack.caddy.url, verify=stack.trusted) as client,
    ):
        # The catch-all: forward-auth sends a caller without a session to the login.
        refused = await client.get("/projects")
        assert refused.status_code == 302
        assert refused.headers["location"] == LOGIN_PAGE
        let_in = await client.get("/projects", headers={"Cookie": SESSION_COOKIE})
        assert let_in.status_code == 200
        assert let_in.text == "web ui: /projects user=alice"
        assert let_in.headers["x-frame-options"] == "DENY"  # security-headers
        # /v1/relay: no login in the way; the relay answers for itself (JSON).
        unauthorized = await client.post("/v1/relay/create/00000000-0000-4000-8000-000000000000")
        assert unauthorized.status_code == 401
        assert "error" in unauthorized.json()
        assert unauthorized.headers["strict-transport-security"].startswith("max-age=")
        health = await client.get("/health")  # the catch-all's: behind the login
        assert health.status_code == 302


@pytest.mark.timeout(180)
async def test_connect_pair_and_traffic_through_the_ingress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ingress_stack(tmp_path, load_ingress()) as stack:
        data_dir = tmp_path / "host"
        host = await stack.start_connector(data_dir)
        try:
            await host.wait_for_line(
                rf"connected to wss://localhost:{stack.caddy.port}/v1/relay/connect since ", 20
            )
            machine_id = (data_dir / MACHINE_ID_FILE).read_text().strip()
            host_id = str(await stack.relay.host_id(machine_id))

            # Pairing with the CLI, through Caddy and the relay.
            status, code, err = await cli(
                "host", "pair-code", "--data-dir", str(data_dir), env=stack.env()
            )
            assert status == 0, err
            client_dir = tmp_path / "client"
            status, _, err = await cli(
                "pair",
                "--relay",
                stack.caddy.url,
                "--host",
                host_id,
                "--code",
                code.strip(),
                "--token",
                stack.relay.token,
                "--data-dir",
                str(client_dir),
                env=stack.env(),
            )
            assert status == 0, err
            assert "paired with host" in err

            monkeypatch.setenv("AGENT_RELAY_CA_FILE", str(stack.certificates.ca))
            pairing = KeyStore(client_dir).load(stack.caddy.url, host_id)
            async with RelayClient(pairing, token=stack.relay.token) as client:
                # A signed request.
                answer, body = await client.request("GET", "/api/whoami")
                assert answer.status == 200
                assert json.loads(body) == {"relayed": True, "path": "/api/whoami"}

                # 100 MiB, verified and hash-checked.
                digest, received = hashlib.sha256(), 0
                async with client.stream("GET", f"/api/blob?size={DOWNLOAD}") as download:
                    assert download.status == 200
                    async for chunk in download.iter_bytes():
                        digest.update(chunk)
                        received += len(chunk)
                expected = hashlib.sha256()
                for offset in range(0, DOWNLOAD, 64 * 1024):
                    expected.update(blob_bytes(offset, min(64 * 1024, DOWNLOAD - offset)))
                assert received == DOWNLOAD
                assert digest.hexdigest() == expected.hexdigest()

                # Server-sent events arrive while the stream is open (no tick for 60 s:
                # the event seen is the one caused below).
                async with client.stream("GET", "/api/events") as events:
                    chunks = events.iter_bytes()
                    seen = b""
                    while b"event: hello" not in seen:
                        seen += await asyncio.wait_for(anext(chunks), 10)
                    created, _ = await client.request(
                        "POST", "/api/workspaces", body=b'{"name": "live"}'
                    )
                    assert created.status == 201
                    while b"workspace_created" not in seen:
                        seen += await asyncio.wait_for(anext(chunks), 10)
                    assert b'"name": "live"' in seen

                # A WebSocket through both hops (client - Caddy - relay - connector - agent).
                async with client.websocket("/api/terminal") as websocket:
                    greeting = await asyncio.wait_for(websocket.recv(), 10)
                    assert greeting.text.startswith("sample terminal")
                    await websocket.send_text("hello")
                    assert (await asyncio.wait_for(websocket.recv(), 10)).text == "hello\r\n$ "
                    await websocket.send_bytes(b"\x00\xff" * 5000)
                    echoed = await asyncio.wait_for(websocket.recv(), 10)
                    assert echoed.payload == b"\x00\xff" * 5000
        finally:
            await stop(host)


async def test_forward_auth_on_the_relay_route_breaks_the_connect_and_doctor_says_why(
    tmp_path: Path,
) -> None:
    broken = move_forward_auth_to_relay_route(load_ingress())
    async with ingress_stack(tmp_path, broken) as stack:
        host = await stack.start_connector(tmp_path / "host")
        try:
            await asyncio.sleep(3)
            assert not any("connected to" in line for line in host.lines), host.lines
        finally:
            await stop(host)
        status, out, err = await cli(
            "doctor",
            "--relay",
            stack.caddy.url,
            "--token",
            stack.relay.token,
            "--ca-file",
            str(stack.certificates.ca),
            env={},
        )
        assert status == 1, out + err
        report = out + err
        assert f"/v1/relay/connect is redirected to {LOGIN_PAGE}" in report
        assert "forward-auth" in report
        # The same stack with the shipped routes connects: the failure is the move.
    async with ingress_stack(tmp_path / "shipped", load_ingress()) as stack:
        host = await stack.start_connector(tmp_path / "shipped-host")
        try:
            await host.wait_for_line(r"connected to wss://", 20)
        finally:
            await stop(host)


def test_the_translation_refuses_what_it_does_not_know() -> None:
    """A rule or middleware the Caddy translation does not cover fails loudly, so a
    change to the shipped IngressRoute cannot pass untested."""
    with pytest.raises(ValueError, match="not understood"):
        parse_rule("Host(`a`) || PathPrefix(`/v1/relay`)")
    with pytest.raises(ValueError, match="not understood"):
        parse_rule("Host(`a`) && PathRegexp(`^/v1`)")
    documents = load_ingress()
    for doc in documents:
        if doc["kind"] == "Middleware" and "headers" in doc["spec"]:
            doc["spec"] = {"stripPrefix": {"prefixes": ["/x"]}}
    with pytest.raises(ValueError, match="middleware not understood"):
        caddy_routes(documents, upstreams={8081: "a:1", 8082: "b:2"}, auth="c:3")

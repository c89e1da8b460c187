"""``agent-relay doctor`` against real servers on loopback: a healthy relay with a
connected host, bad and expired tokens, an offline host, a relay that is down, and
proxies in front that answer /v1/relay with a login redirect or a 404 page."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from agent_relay.doctor import Finding, Options, Report, Status, diagnose, format_report
from agent_relay.relay.auth import JwtSecret, issue_token
from tests.support.caddy import free_port
from tests.support.relay import Relay

NOT_A_JWT = "garbage"  # a deliberately bad token


def by_check(report: Report) -> dict[str, Finding]:
    return {finding.check: finding for finding in report.findings}


def statuses(report: Report) -> dict[str, Status]:
    return {finding.check: finding.status for finding in report.findings}


async def test_healthy_relay_with_a_connected_host(relay: Relay) -> None:
    host = await relay.host()
    try:
        host_id = str(await relay.host_id())
        report = await diagnose(Options(relay.url, token=relay.token, host_id=host_id))
    finally:
        await host.close()
    assert statuses(report) == {
        "url": Status.OK,
        "dns": Status.OK,
        "tcp": Status.OK,
        "health": Status.OK,
        "connect route": Status.OK,
        "token": Status.OK,
        "host": Status.OK,
        "clock": Status.OK,
    }
    assert not report.failed
    assert "online" in by_check(report)["host"].message
    assert format_report(report).endswith("no problem found")


async def test_offline_and_unknown_hosts(relay: Relay) -> None:
    host = await relay.host()
    host_id = str(await relay.host_id())
    await host.close()
    for _ in range(200):
        report = await diagnose(Options(relay.url, token=relay.token, host_id=host_id))
        if "offline" in by_check(report)["host"].message:
            break
        await asyncio.sleep(0.02)
    assert by_check(report)["host"].status is Status.FAIL
    assert "offline" in by_check(report)["host"].message
    unknown = await diagnose(Options(relay.url, token=relay.token, host_id=str(uuid.uuid4())))
    assert by_check(unknown)["host"].status is Status.FAIL
    assert "no host" in by_check(unknown)["host"].message


async def test_token_from_another_secret_is_refused(relay: Relay) -> None:
    other = await issue_token(relay.store, JwtSecret.generate(), relay.user_id, timedelta(hours=1))
    report = await diagnose(Options(relay.url, token=other.token, host_id=str(uuid.uuid4())))
    token = by_check(report)["token"]
    assert token.status is Status.FAIL
    assert "refuses the token" in token.message
    assert token.hint is not None
    assert "secret" in token.hint
    assert by_check(report)["host"].status is Status.SKIP
    assert by_check(report)["connect route"].status is Status.OK
    assert report.failed


async def test_expired_token_says_so(relay: Relay) -> None:
    expired = await issue_token(
        relay.store,
        relay.secret,
        relay.user_id,
        timedelta(minutes=5),
        now=1_000_000_000,  # September 2001
    )
    report = await diagnose(Options(relay.url, token=expired.token))
    token = by_check(report)["token"]
    assert token.status is Status.FAIL
    assert "expired 2001-09-09" in token.message
    assert token.hint is not None
    assert "issue a new one" in token.hint


async def test_not_a_jwt(relay: Relay) -> None:
    report = await diagnose(Options(relay.url, token=NOT_A_JWT))
    token = by_check(report)["token"]
    assert token.status is Status.FAIL
    assert token.hint == "this is not a JWT; copy the whole token"


async def test_relay_down() -> None:
    report = await diagnose(Options(f"http://127.0.0.1:{free_port()}", token=NOT_A_JWT, timeout=5))
    assert by_check(report)["tcp"].status is Status.FAIL
    assert "connection refused" in by_check(report)["tcp"].message
    assert "health" not in by_check(report)  # nothing more to ask
    assert report.failed


@contextlib.asynccontextmanager
async def proxy_answering(status: int, body: str, headers: dict[str, str]) -> AsyncIterator[str]:
    """A server in the relay's place, as a misconfigured ingress: every /v1/relay request
    gets ``status``; anything else a web page."""

    def answer(connection: ServerConnection, request: Request) -> Response:
        if not request.path.startswith("/v1/relay"):
            response = connection.respond(200, "<html>the web UI</html>")
            response.headers["Content-Type"] = "text/html"
            return response
        response = connection.respond(status, body)
        for name, value in headers.items():
            if name in response.headers:
                del response.headers[name]
            response.headers[name] = value
        return response

    async def never(websocket: ServerConnection) -> None:
        raise AssertionError("no WebSocket should be accepted")

    async with serve(never, "127.0.0.1", 0, process_request=answer) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


async def test_forward_auth_in_front_of_the_relay_is_named() -> None:
    login = "https://auth.example/outpost.goauthentik.io/start?rd=%2Fv1%2Frelay%2Fconnect"
    async with proxy_answering(302, "", {"Location": login}) as url:
        report = await diagnose(Options(url, token=NOT_A_JWT, timeout=5))
    route = by_check(report)["connect route"]
    assert route.status is Status.FAIL
    assert f"redirected to {login}" in route.message
    assert route.hint is not None
    assert "forward-auth" in route.hint
    assert by_check(report)["health"].status is Status.WARN  # the web UI's page
    assert by_check(report)["token"].status is Status.SKIP


async def test_wrong_path_behind_a_proxy_is_named() -> None:
    page = "<html><body>404 page not found</body></html>"
    async with proxy_answering(404, page, {"Content-Type": "text/html"}) as url:
        report = await diagnose(Options(url + "/", timeout=5))
    route = by_check(report)["connect route"]
    assert route.status is Status.FAIL
    assert route.message.startswith("no relay at /v1/relay/connect (HTTP 404, text/html)")
    assert route.hint is not None
    assert "8082" in route.hint


async def test_login_page_instead_of_the_relays_401() -> None:
    async with proxy_answering(
        401, "<html>log in</html>", {"Content-Type": "text/html", "WWW-Authenticate": "Basic"}
    ) as url:
        report = await diagnose(Options(url, timeout=5))
    route = by_check(report)["connect route"]
    assert route.status is Status.FAIL
    assert "something in front of the relay refuses the upgrade" in route.message


async def run_doctor(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from agent_relay.cli import main; main()",
        "doctor",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_cli(relay: Relay, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(relay.token + "\n")
    code, output = await run_doctor("--relay", relay.url, "--token-file", str(token_file))
    assert code == 0, output
    assert "ok    token         the relay accepts the token; expires " in output
    assert output.rstrip().endswith("no problem found")
    code, output = await run_doctor("--relay", relay.url, "--token", "nope")
    assert code == 1
    assert "FAIL  token" in output
    assert "1 problem(s): token" in output

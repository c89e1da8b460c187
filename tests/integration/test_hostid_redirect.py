"""The connector's host-id lookup (GET /v1/hosts) behind a login proxy: the redirect is
not followed, so the bearer token never reaches the login page's server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from agent_relay.host.hostid import look_up_host_id


async def refuse(websocket: ServerConnection) -> None:
    raise AssertionError("no WebSocket expected")


def url_of(server: Server) -> str:
    port = next(iter(server.sockets)).getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def login_page() -> AsyncIterator[tuple[str, list[Request]]]:
    seen: list[Request] = []

    def answer(connection: ServerConnection, request: Request) -> Response:
        seen.append(request)
        return connection.respond(200, '{"hosts": []}')

    async with serve(refuse, "127.0.0.1", 0, process_request=answer) as server:
        yield url_of(server), seen


async def test_redirect_to_a_login_page_is_not_followed(
    login_page: tuple[str, list[Request]],
) -> None:
    login_url, seen = login_page

    def redirect(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(302, "")
        response.headers["Location"] = f"{login_url}/login"
        return response

    async with serve(refuse, "127.0.0.1", 0, process_request=redirect) as proxy:
        host_id = await look_up_host_id(url_of(proxy), "secret-token", "machine-1", timeout=5)
    assert host_id is None
    assert seen == []  # the login server never saw the request, nor the token

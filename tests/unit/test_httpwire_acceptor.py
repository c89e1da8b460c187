"""The server's acceptor thread: a liveness probe is answered while the event loop is
busy (here: blocked outright), other requests are the loop's, and a loop that stopped
turning is not vouched for by the thread."""

from __future__ import annotations

import asyncio
import socket
import threading

from agent_relay.errors import HttpError
from agent_relay.httpwire.server import Exchange, HttpServer, ServerLimits

BODY = b'{"status":"ok"}'


def ask(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


async def serving() -> tuple[HttpServer, int]:
    async def handler(ex: Exchange) -> None:
        await ex.respond(200, b"from the loop " + ex.target.encode(), content_type=b"text/plain")

    async def on_error(ex: Exchange, exc: BaseException) -> None:
        await ex.respond(500, b"")

    server = HttpServer(
        handler,
        on_error,
        ServerLimits(),
        render_error=HttpError.body,
        fast_answers={b"/health": BODY},
    )
    _, port = await server.start("127.0.0.1", 0)
    assert server.acceptor is not None
    return server, port


async def stop(server: HttpServer) -> None:
    await server.stop_accepting()
    await server.wait_connections(1)


async def test_health_is_answered_while_the_loop_is_blocked() -> None:
    server, port = await serving()
    answers: list[bytes] = []
    done = threading.Event()

    def probe() -> None:
        try:
            answers.append(ask(port, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"))
            answers.append(ask(port, b"HEAD /health?full=1 HTTP/1.1\r\nhost: x\r\n\r\n"))
        finally:
            done.set()

    threading.Thread(target=probe).start()
    # The loop does nothing else until the probes are answered (or failed).
    await asyncio.get_running_loop().run_in_executor(None, lambda: None)  # a turn first
    done.wait(60)  # blocks the event loop itself
    try:
        get, head = answers
        assert get.startswith(b"HTTP/1.1 200 OK\r\n")
        assert get.endswith(b"\r\n\r\n" + BODY)
        assert b"content-type: application/json\r\n" in get
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert head.endswith(b"\r\n\r\n")  # HEAD: the length, no body
        assert f"content-length: {len(BODY)}".encode() in head
        assert server.acceptor is not None
        assert server.acceptor.answered == 2
    finally:
        await stop(server)


async def test_everything_else_goes_to_the_loop() -> None:
    server, port = await serving()
    try:
        for request in (
            b"GET /other HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            b"GET /health HTTP/1.1\r\nhost: x\r\norigin: https://a.example\r\n"
            b"connection: close\r\n\r\n",
            b"POST /health HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            # Pipelined: the second request must be answered too.
            b"GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /other HTTP/1.1\r\nhost: x\r\n"
            b"connection: close\r\n\r\n",
        ):
            answer = await asyncio.to_thread(ask, port, request)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert b"from the loop" in answer
        assert server.acceptor is not None
        assert server.acceptor.answered == 0
    finally:
        await stop(server)


async def test_a_loop_that_stopped_turning_answers_its_probes_itself() -> None:
    server, port = await serving()
    assert server.acceptor is not None
    server.acceptor._stall_after = -1.0  # as if the loop had not turned for ages
    try:
        request = b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        answer = await asyncio.to_thread(ask, port, request)
        assert b"from the loop /health" in answer
        assert server.acceptor.answered == 0
    finally:
        await stop(server)


async def test_a_connection_that_sends_later_is_still_routed() -> None:
    server, port = await serving()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as silent:
            answer = await asyncio.to_thread(
                ask, port, b"GET /other HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            assert b"from the loop /other" in answer  # a silent one holds up nobody
            silent.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            late = b""
            while chunk := await asyncio.to_thread(silent.recv, 4096):
                late += chunk
        assert late.endswith(BODY)
    finally:
        await stop(server)


async def test_after_stopping_nothing_listens() -> None:
    server, port = await serving()
    await stop(server)
    try:
        await asyncio.to_thread(ask, port, b"GET /health HTTP/1.1\r\n\r\n")
    except ConnectionRefusedError:
        return
    raise AssertionError("the port still accepts connections")

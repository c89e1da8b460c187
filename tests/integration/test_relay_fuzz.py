"""Arbitrary requests at the relay's HTTP parser and router: every answer is a 4xx (or a
2xx for a valid route) with a JSON error body, never a 5xx, a hang or a dead server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay.relay.config import RelayConfig
from agent_relay.relay.service import RelayService
from agent_relay.store import Store


@pytest.fixture(scope="module")
def relay_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A relay on SQLite, in a thread with its own event loop, for blocking clients."""
    database = Path(tmp_path_factory.mktemp("fuzz")) / "relay.sqlite3"
    loop = asyncio.new_event_loop()
    started: list[RelayService] = []
    ready = threading.Event()

    async def start() -> None:
        store = await Store.open(str(database))
        service = RelayService(RelayConfig(listen_host="127.0.0.1", listen_port=0), store)
        await service.start()
        started.append(service)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    service = started[0]
    assert service.address is not None
    yield service.address[1]
    asyncio.run_coroutine_threadsafe(service.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def check_answer(answer: bytes) -> None:
    if not answer:
        return  # closing on garbage that is not even a request line is fine
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
    status = int(status_line.split()[1])
    assert status < 500, answer[:500]
    if status >= 400 and body:
        assert "error" in json.loads(body)


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=20)
paths = st.one_of(
    st.sampled_from(
        [
            "/health",
            "/metrics",
            "/v1/hosts",
            "/v1/relay/connect",
            "/v1/relay/create/",
            "/v1/relay/h/",
            "/v1/relay/h/00000000-0000-0000-0000-000000000000/s/",
        ]
    ).flatmap(lambda p: st.text(max_size=60).map(lambda t: p + t)),
    st.text(max_size=80).map(lambda t: "/" + t),
)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]) | token,
    path=paths,
    headers=st.lists(st.tuples(token, header_values), max_size=8),
    body=st.binary(max_size=300),
)
def test_structured_requests(
    relay_port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    target = path.encode("utf-8", "surrogateescape").replace(b" ", b"%20").replace(b"\r", b"")
    target = target.replace(b"\n", b"")
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"host: relay"]
    lines += [f"{name}: {value}".encode() for name, value in headers]
    lines.append(f"content-length: {len(body)}".encode())
    check_answer(exchange(relay_port, b"\r\n".join(lines) + b"\r\n\r\n" + body))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=500))
def test_arbitrary_bytes(relay_port: int, raw: bytes) -> None:
    check_answer(exchange(relay_port, raw))


def test_still_healthy_afterwards(relay_port: int) -> None:
    answer = exchange(relay_port, b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")

"""Issue 11 item 3: headers are signed end to end. A hostile relay (tests/support/hostile.py)
adds or changes request headers (Cookie, Authorization, Content-Type, Range,
X-Forwarded-*, a method override) and answer headers (Content-Type, Location,
Set-Cookie, Content-Disposition): what it adds never reaches the local server nor is
shown as verified by the client, and what it changes is refused. Both host adapters:
the connector's trust layer and protect()."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_relay.client import HostRefusedError, RelayClient, VerificationError
from tests.integration.test_client_cli import cli, pair
from tests.support.hostile import Answer, Recorded
from tests.support.trust_stack import Stack, trust_stack

MODES = ["connector", "asgi"]
MINE = {
    "content-type": "application/json",
    "authorization": "Bearer the-clients-own",
    "range": "bytes=0-9",
    "x-mine": "1",
}


@pytest.fixture(params=MODES)
async def paired(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
) -> AsyncIterator[tuple[Stack, RelayClient]]:
    async with trust_stack(tmp_path, sqlite_url, request.param) as stack:
        pairing = await stack.pair()
        async with stack.client(pairing) as client:
            yield stack, client


def seen_by_local_server(body: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in json.loads(body)["headers"]:
        out.setdefault(name, []).append(value)
    return out


# ------------------------------------------------------------------ request headers

ADDED = [
    ("cookie", "session=the-victims"),
    ("authorization", "Bearer the-relays"),
    ("x-http-method-override", "DELETE"),
    ("range", "bytes=100-"),
    ("x-forwarded-for", "203.0.113.9"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "http"),
    ("forwarded", "for=203.0.113.9"),
]


async def test_request_headers_a_relay_adds_never_reach_the_local_server(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired

    def add(recorded: Recorded) -> Recorded:
        recorded.headers += ADDED
        return recorded

    stack.hostile.on_request = add
    response, body = await client.request("GET", "/headers", headers={"x-mine": "1"})
    assert response.status == 200
    seen = seen_by_local_server(body)
    for name, _ in ADDED:
        assert name not in seen, (name, seen[name])
    assert seen["x-mine"] == ["1"]  # what the client signed arrives
    assert seen["x-vk-relayed"] == ["1"]  # and what the host sets itself


async def test_request_headers_the_client_signed_arrive_unchanged(
    paired: tuple[Stack, RelayClient],
) -> None:
    _, client = paired
    _, body = await client.request("POST", "/headers", body=b"{}", headers=MINE)
    seen = seen_by_local_server(body)
    for name, value in MINE.items():
        assert seen[name] == [value], name
    assert "cookie" not in seen


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("content-type", "text/html"),
        ("authorization", "Bearer the-relays"),
        ("range", "bytes=100-"),
        ("x-mine", "2"),
        ("content-type", None),  # removed
        ("x-vk-sig-headers", "x-mine"),  # the list itself narrowed
    ],
)
async def test_a_request_header_the_relay_changes_is_refused_by_the_host(
    paired: tuple[Stack, RelayClient], name: str, value: str | None
) -> None:
    stack, client = paired

    def change(recorded: Recorded) -> Recorded:
        kept = [(k, v) for k, v in recorded.headers if k.lower() != name]
        recorded.headers = kept if value is None else [*kept, (name, value)]
        return recorded

    stack.hostile.on_request = change
    with pytest.raises(HostRefusedError) as refused:
        await client.request("POST", "/headers", body=b"{}", headers=MINE)
    assert refused.value.reason == "bad_signature"
    assert stack.upstream.posts == 0  # never reached the local server


async def test_a_second_line_of_a_signed_request_header_is_refused(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired

    def duplicate(recorded: Recorded) -> Recorded:
        recorded.headers.append(("content-type", "text/html"))
        return recorded

    stack.hostile.on_request = duplicate
    with pytest.raises(HostRefusedError, match="bad_signature"):
        await client.request("POST", "/headers", body=b"{}", headers=MINE)
    assert stack.upstream.posts == 0


# ------------------------------------------------------------------ answer headers


def adding(*extra: tuple[bytes, bytes]) -> object:
    def hook(recorded: Recorded, answer: Answer) -> Answer:
        answer.headers = [*answer.headers, *extra]
        return answer

    return hook


def replacing(name: bytes, value: bytes) -> object:
    def hook(recorded: Recorded, answer: Answer) -> Answer:
        answer.headers = [(k, v) for k, v in answer.headers if k != name] + [(name, value)]
        return answer

    return hook


async def test_answer_headers_the_host_signed_are_shown_as_verified(
    paired: tuple[Stack, RelayClient],
) -> None:
    _, client = paired
    response, _ = await client.request("GET", "/headers")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == 'attachment; filename="report.json"'
    assert response.headers["x-app"] == "from the host"
    # The relay's own (isolation headers) are there, but not as verified.
    assert "content-security-policy" not in response.headers
    assert response.unverified_headers["x-content-type-options"] == "nosniff"
    moved, _ = await client.request("GET", "/moved")
    assert moved.status == 303
    assert moved.headers["location"] == "/echo"


async def test_answer_headers_a_relay_adds_are_never_shown_as_verified(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired
    stack.hostile.on_answer = adding(  # type: ignore[assignment]
        (b"set-cookie", b"relay-session=1; Path=/"),
        (b"location", b"https://evil.example/"),
        (b"x-evil", b"1"),
        (b"content-encoding", b"gzip"),
    )
    response, body = await client.request("GET", "/headers")
    assert json.loads(body)["headers"]  # the body still verifies
    for name in ("set-cookie", "location", "x-evil", "content-encoding"):
        assert name not in response.headers, name
        assert name in response.unverified_headers, name


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/headers", b"content-type", b"text/html"),
        ("/headers", b"content-disposition", b"inline"),
        ("/headers", b"x-app", b"from the relay"),
        ("/moved", b"location", b"https://evil.example/"),
        ("/headers", b"x-vk-resp-headers", b"content-type"),  # the list narrowed
    ],
)
async def test_an_answer_header_the_relay_changes_is_refused_by_the_client(
    paired: tuple[Stack, RelayClient], path: str, name: bytes, value: bytes
) -> None:
    stack, client = paired
    stack.hostile.on_answer = replacing(name, value)  # type: ignore[assignment]
    with pytest.raises(VerificationError):
        await client.request("GET", path)


async def test_a_second_content_type_on_an_answer_is_refused(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired
    stack.hostile.on_answer = adding((b"content-type", b"text/html"))  # type: ignore[assignment]
    with pytest.raises(VerificationError):
        await client.request("GET", "/headers")


async def test_a_streamed_answer_header_changed_is_refused(
    paired: tuple[Stack, RelayClient],
) -> None:
    stack, client = paired
    response, _ = await client.request("GET", "/events")
    assert response.streamed
    assert response.headers["content-type"].startswith("text/event-stream")
    stack.hostile.on_answer = replacing(b"content-type", b"text/html")  # type: ignore[assignment]
    with pytest.raises(VerificationError):
        await client.request("GET", "/events")


# ------------------------------------------------------------------ the command line


async def test_request_include_prints_only_verified_headers(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with trust_stack(tmp_path, sqlite_url) as stack:
        assert (await pair(stack)).status == 0
        stack.hostile.on_answer = adding(  # type: ignore[assignment]
            (b"set-cookie", b"relay-session=1"), (b"x-evil", b"1")
        )
        done = await cli(stack, "request", "-i", "/headers")
        assert done.status == 0, done.stderr
        printed = done.stderr.lower()
        assert "x-app: from the host" in printed
        assert "content-type: application/json" in printed
        assert "x-evil" not in printed
        assert "set-cookie" not in printed


async def test_a_page_on_another_origin_may_read_the_headers_the_host_signed(
    paired: tuple[Stack, RelayClient],
) -> None:
    """The browser SDK checks the named headers, so the relay exposes them to CORS."""
    _, client = paired
    response, _ = await client.request("GET", "/headers", headers={"origin": "https://ui.example"})
    exposed_list = response.unverified_headers["access-control-expose-headers"]
    exposed = {name.strip() for name in exposed_list.split(",")}
    assert {"x-vk-resp-headers", "content-type", "content-disposition", "x-app"} <= exposed

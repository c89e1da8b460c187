"""Issue 11 item 3: headers are signed end to end. A hostile relay (tests/support/hostile.py)
adds or changes request headers (Cookie, Authorization, Content-Type, Range,
X-Forwarded-*, a method override) and answer headers (Content-Type, Location,
Set-Cookie, Content-Disposition): what it adds never reaches the local server nor is
shown as verified by the client, and what it changes is refused. Both host adapters:
the connector's trust layer and protect().

A client signs its request headers only once a verified answer of the host has named its
own (x-vk-resp-headers): the negotiation is tested at the end, with a host that checks
the reference's signed string only (TrustHost(signed_headers=False))."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_relay.client import (
    HostRefusedError,
    KeyStore,
    Pairing,
    RelayClient,
    VerificationError,
)
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
        async with stack.client(pairing, store=stack.store()) as client:
            # The first verified answer teaches the client that this host signs headers.
            await client.request("GET", "/headers")
            assert client.pairing.signs_headers
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


# ------------------------------------------------------------------ negotiation


@pytest.mark.parametrize("mode", MODES)
async def test_a_host_without_signed_headers_keeps_working(
    tmp_path: Path, sqlite_url: str, mode: str
) -> None:
    """A host that verifies the reference's signed string only (it ignores
    x-vk-sig-headers and never sends x-vk-resp-headers): our client keeps signing the
    reference way, and every request passes, the local server getting what was sent."""
    async with trust_stack(tmp_path, sqlite_url, mode, signed_headers=False) as stack:
        pairing = await stack.pair()
        async with stack.client(pairing, store=stack.store()) as client:
            for _ in range(3):
                response, body = await client.request("POST", "/headers", body=b"{}", headers=MINE)
                assert response.status == 200
                assert "x-vk-resp-headers" not in response.unverified_headers
                seen = seen_by_local_server(body)
                assert "x-vk-sig-headers" not in seen
                assert seen["x-mine"] == ["1"]
            assert not client.pairing.signs_headers
        stored = stack.store().load(pairing.relay_url, pairing.host_id)
        assert not stored.signs_headers


@pytest.mark.parametrize("mode", MODES)
async def test_the_first_verified_answer_teaches_signed_headers_for_good(
    tmp_path: Path, sqlite_url: str, mode: str
) -> None:
    async with trust_stack(tmp_path, sqlite_url, mode) as stack:
        # pair() makes one signed read right away and learns it there ...
        assert (await stack.pair(name="other")).signs_headers
        # ... and when that did not happen (it failed), the first request teaches it.
        pairing = dataclasses.replace(await stack.pair(), signs_headers=False)
        stack.store().save(pairing)
        sent: list[dict[str, str]] = []

        def record(recorded: Recorded) -> Recorded:
            sent.append({k.lower(): v for k, v in recorded.headers})
            return recorded

        stack.hostile.on_request = record
        async with stack.client(pairing, store=stack.store()) as client:
            response, _ = await client.request("GET", "/headers")
            assert "x-vk-sig-headers" not in sent[0]  # the one request signed the old way
            assert response.headers["x-app"] == "from the host"  # its answer's are signed
            assert client.pairing.signs_headers
        stored = stack.store().load(pairing.relay_url, pairing.host_id)
        assert stored.signs_headers  # persisted with the pairing

        # A later run (a new client from the stored pairing) signs its headers at once,
        # and a header the relay changes on it is refused.
        async with stack.client(stored, store=stack.store()) as client:
            await client.request("GET", "/headers")
            assert "x-vk-sig-headers" in sent[1]

            def change(recorded: Recorded) -> Recorded:
                record(recorded)
                recorded.headers = [
                    *[(k, v) for k, v in recorded.headers if k.lower() != "x-mine"],
                    ("x-mine", "2"),
                ]
                return recorded

            stack.hostile.on_request = change
            with pytest.raises(HostRefusedError, match="bad_signature"):
                await client.request("POST", "/headers", body=b"{}", headers=MINE)
            assert stack.upstream.posts == 0

            # The relay cannot downgrade: dropping the list from the request (to make the
            # host forward what it adds) fails the signature, which covers the digest.
            def strip_list(recorded: Recorded) -> Recorded:
                recorded.headers = [
                    (k, v) for k, v in recorded.headers if k.lower() != "x-vk-sig-headers"
                ] + [("cookie", "session=the-victims")]
                return recorded

            stack.hostile.on_request = strip_list
            with pytest.raises(HostRefusedError, match="bad_signature"):
                await client.request("POST", "/headers", body=b"{}", headers=MINE)
            assert stack.upstream.posts == 0
            assert client.pairing.signs_headers


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_relay_stripping_the_answers_header_list_fails_the_answer(
    tmp_path: Path, sqlite_url: str, streamed: bool
) -> None:
    """The host binds x-vk-resp-headers into its signature, so a relay that removes it
    from the first answer (to keep the client from learning) makes it fail, it cannot
    silently keep the pairing on unsigned headers."""
    async with trust_stack(tmp_path, sqlite_url) as stack:
        stack.hostile.on_answer = strip_header_list
        pairing = await stack.pair()  # its signed read fails: nothing learned
        assert not pairing.signs_headers
        assert not stack.store().load(pairing.relay_url, pairing.host_id).signs_headers
        async with stack.client(pairing, store=stack.store()) as client:
            with pytest.raises(VerificationError):
                await client.request("GET", "/big" if streamed else "/headers")
            assert not client.pairing.signs_headers


def strip_header_list(recorded: Recorded, answer: Answer) -> Answer:
    answer.headers = [(k, v) for k, v in answer.headers if k.lower() != b"x-vk-resp-headers"]
    return answer


async def test_an_old_pairing_file_loads_without_the_flag(tmp_path: Path) -> None:
    """A pairing saved before the flag existed loads as not signing headers."""
    store = KeyStore(tmp_path)
    pairing = Pairing.from_json(
        b'{"version": 1, "relay_url": "http://127.0.0.1:1", '
        b'"host_id": "00000000-0000-4000-8000-000000000001", "client_id": "c", '
        b'"client_private_key_b64": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", '
        b'"host_public_key_b64": "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=", '
        b'"signing_session_id": "s"}',
        "old.json",
    )
    assert not pairing.signs_headers
    store.save(pairing.with_signed_headers())
    assert store.load(pairing.relay_url, pairing.host_id).signs_headers

"""The shared vectors, from the Python side: the committed files are exactly what
generate.py builds from the Python implementation today (so a change to a format shows
up here and in clients/browser/test/vectors.test.mjs at once), and the Python client
accepts the good cases and refuses the altered ones, as the SDK must."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent_relay.client.errors import VerificationError
from agent_relay.client.frames import FrameVerifier
from agent_relay.client.signing import SignedRequest, check_response
from agent_relay.trust import wire
from agent_relay.trust.frames import FrameCodec

from . import generate


def load(name: str) -> Any:
    return json.loads((generate.HERE / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(generate.BUILDERS))
def test_committed_vectors_are_what_python_builds(name: str) -> None:
    committed = (generate.HERE / f"{name}.json").read_text(encoding="utf-8")
    assert committed == generate.render(name), (
        f"tests/vectors/{name}.json is stale: run .venv/bin/python -m tests.vectors.generate"
    )


def _host_public() -> Ed25519PublicKey:
    return generate.host_key().public_key()


def test_python_client_accepts_signed_responses_and_refuses_altered() -> None:
    for case in load("canonical")["responses"]:
        request = SignedRequest(
            generate.SESSION, 0, generate.REQUEST_NONCE, "sig", case["path_and_query"]
        )
        body = wire.b64decode(case["body_b64"])
        check = check_response(_host_public(), request, case["status"], case["headers"])
        check.feed(body)
        check.finish()
        altered = check_response(_host_public(), request, case["status"], case["headers"])
        altered.feed(body + b" ")
        with pytest.raises(VerificationError):
            altered.finish()


def test_python_client_stream_decisions_match_the_vectors() -> None:
    data = load("chunked")
    records = [wire.b64decode(r) for r in data["records_b64"]]
    for case in data["bad"]:
        body = bytearray(b"".join(records[i] for i in case["records"]))
        if case["flip"] is not None:
            body[case["flip"]] ^= 0x01
        prefix, accepted = generate._python_verified_prefix(bytes(body))
        assert (prefix, accepted) == (case["verified_prefix"], False), case["name"]


def test_python_frame_codecs_open_the_other_sides_envelopes() -> None:
    data = load("frames")
    client = FrameVerifier(_host_public(), generate.SESSION, data["upgrade_nonce"])
    for frame in data["from_host"]:
        opened = client.open(frame["envelope"])
        assert (opened.msg_type, wire.b64encode(opened.payload)) == (
            frame["msg_type"],
            frame["payload_b64"],
        )
    host = FrameCodec(
        generate.SESSION,
        data["upgrade_nonce"],
        generate.host_key(),
        generate.client_key().public_key(),
    )
    for frame in data["from_client"]:
        msg_type, payload = host.decode(frame["envelope"])
        assert (msg_type, wire.b64encode(payload)) == (frame["msg_type"], frame["payload_b64"])


def test_request_signatures_verify_with_the_client_key() -> None:
    public = generate.client_key().public_key()
    for case in load("canonical")["requests"]:
        public.verify(wire.b64decode(case["signature_b64"]), case["message"].encode())


def test_python_client_checks_signed_answer_headers_as_the_vectors_say() -> None:
    data = load("headers")
    case = data["response"]
    request = SignedRequest(
        generate.SESSION, 0, generate.REQUEST_NONCE, "sig", case["path_and_query"], ("x",)
    )
    body = wire.b64decode(case["body_b64"])

    def check(lines: list[list[str]]) -> list[tuple[str, str]]:
        pairs = [(k, v) for k, v in lines]
        first: dict[str, str] = {}
        for k, v in pairs:
            first.setdefault(k, v)
        checked = check_response(_host_public(), request, case["status"], first, pairs)
        checked.feed(body)
        checked.finish()
        assert checked.verified_headers is not None
        return checked.verified_headers

    verified = check(case["lines"] + case["added"])
    assert sorted({k for k, _ in verified}) == sorted(case["verified"])
    assert not {k for k, _ in case["added"]} & {k for k, _ in verified}
    for bad in case["bad"]:
        with pytest.raises(VerificationError):
            check(bad["lines"])


def test_signed_request_headers_build_the_vectors_message() -> None:
    case = load("headers")["request"]
    lines = [(k, v) for k, v in case["lines"]]
    names = wire.parse_header_list(case["sig_headers"])
    assert wire.headers_hash(names, lines) == case["h_headers"]
    message = wire.request_message(
        case["ts"],
        case["method"],
        case["path_and_query"],
        generate.SESSION,
        generate.REQUEST_NONCE,
        wire.body_hash(wire.b64decode(case["body_b64"])),
        case["h_headers"],
    )
    assert message.decode() == case["message"]
    generate.client_key().public_key().verify(wire.b64decode(case["signature_b64"]), message)

"""Differential fuzzing of the SDK's parsers against the Python client's: the same
chunked-v1 bodies (altered, cut, reordered, read in random pieces) and the same
WebSocket envelope sequences (altered, dropped, repeated, swapped) go to both; they
must hand out the same verified bytes and refuse at the same point."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay.client.errors import VerificationError
from agent_relay.client.frames import FrameVerifier
from agent_relay.client.signing import StreamVerifier
from agent_relay.trust import wire
from agent_relay.trust.frames import FrameCodec
from agent_relay.trust.signing import StreamSigner
from tests.vectors import generate

from .node import BROWSER, require_toolchain

SESSION, REQUEST_NONCE, RESPONSE_NONCE = (
    generate.SESSION,
    generate.REQUEST_NONCE,
    generate.RESPONSE_NONCE,
)
HOST_PUBLIC = wire.b64encode(generate.host_key().public_key().public_bytes_raw())
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Driver:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [require_toolchain(), "test/driver.mjs"],
            cwd=BROWSER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __call__(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the SDK driver ended"
        answer: dict[str, Any] = json.loads(line)
        assert "crash" not in answer, answer["crash"]
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def sdk() -> Iterator[Driver]:
    driver = Driver()
    yield driver
    driver.close()


def split_records(blob: bytes) -> list[bytes]:
    out = []
    while blob:
        (length,) = wire.CHUNK_HEADER.unpack_from(blob)
        size = wire.CHUNK_HEADER.size + length + wire.SIGNATURE_SIZE
        out.append(blob[:size])
        blob = blob[size:]
    return out


@st.composite
def streamed_bodies(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    writes = draw(st.lists(st.binary(min_size=1, max_size=300), max_size=4))
    signer = StreamSigner(generate.host_key(), SESSION, REQUEST_NONCE, RESPONSE_NONCE)
    records = [r for w in writes for r in split_records(signer.feed(w))]
    records.append(signer.end())
    order = draw(
        st.one_of(
            st.just(list(range(len(records)))),
            st.lists(st.integers(0, len(records) - 1), max_size=len(records) + 1),
            st.permutations(list(range(len(records)))),
        )
    )
    body = bytearray(b"".join(records[i] for i in order))
    for _ in range(draw(st.integers(0, 2))):
        if body:
            at = draw(st.integers(0, len(body) - 1))
            body[at] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    body += draw(st.binary(max_size=8))
    reads: list[int] = []
    left = len(body)
    while left > 0:
        size = draw(st.integers(1, max(1, left)))
        reads.append(size)
        left -= size
    return bytes(body), reads


def python_stream(body: bytes, reads: list[int]) -> dict[str, Any]:
    verifier = StreamVerifier(
        generate.host_key().public_key(), SESSION, REQUEST_NONCE, RESPONSE_NONCE
    )
    out = at = 0
    try:
        for size in reads:
            out += sum(len(p) for p in verifier.feed(body[at : at + size]))
            at += size
        verifier.finish()
    except VerificationError:
        return {"accepted": False, "prefix": out}
    return {"accepted": True, "prefix": out}


@FUZZ
@given(case=streamed_bodies())
def test_chunked_v1_decisions_agree(sdk: Driver, case: tuple[bytes, list[int]]) -> None:
    body, reads = case
    expected = python_stream(body, reads)
    got = sdk(
        "stream",
        host_public_b64=HOST_PUBLIC,
        session_id=SESSION,
        request_nonce=REQUEST_NONCE,
        response_nonce=RESPONSE_NONCE,
        body_b64=wire.b64encode(body),
        reads=reads,
    )
    assert got == expected


FRAME_TYPES = st.sampled_from(["text", "binary", "ping", "pong", "close"])


@st.composite
def envelope_sequences(draw: st.DrawFn) -> list[str]:
    codec = FrameCodec(
        SESSION, REQUEST_NONCE, generate.host_key(), generate.client_key().public_key()
    )
    frames = draw(st.lists(st.tuples(FRAME_TYPES, st.binary(max_size=64)), min_size=1, max_size=5))
    envelopes = [codec.encode(t, p) for t, p in frames]
    order = draw(
        st.one_of(
            st.just(list(range(len(envelopes)))),
            st.lists(st.integers(0, len(envelopes) - 1), min_size=1, max_size=6),
        )
    )
    out = [envelopes[i] for i in order]
    if draw(st.booleans()):
        i = draw(st.integers(0, len(out) - 1))
        text = bytearray(out[i].encode())
        at = draw(st.integers(0, len(text) - 1))
        # Printable ASCII only: both sides then see the same JSON text.
        text[at] = draw(st.integers(0x20, 0x7E))
        out[i] = text.decode()
    if draw(st.booleans()):
        out.append(draw(st.text(max_size=40)))
    return out


def python_frames(envelopes: list[str]) -> list[list[str]]:
    verifier = FrameVerifier(generate.host_key().public_key(), SESSION, REQUEST_NONCE)
    opened = []
    for envelope in envelopes:
        try:
            frame = verifier.open(envelope)
        except VerificationError:
            break
        opened.append([frame.msg_type, wire.b64encode(frame.payload)])
    return opened


@FUZZ
@given(envelopes=envelope_sequences())
def test_frame_envelope_decisions_agree(sdk: Driver, envelopes: list[str]) -> None:
    got = sdk(
        "frames",
        host_public_b64=HOST_PUBLIC,
        session_id=SESSION,
        upgrade_nonce=REQUEST_NONCE,
        envelopes=envelopes,
    )
    assert got["opened"] == python_frames(envelopes)

"""The client's sans-IO core: pairing against a host half built from the spake2 package
(side B) and wire.py, request signing, response and streamed-body checks, signed frames,
the host clock and the key store. Every forged, altered, reordered or truncated answer
must raise VerificationError, and nothing else may escape on arbitrary input."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spake2 import SPAKE2_B

from agent_relay.client import ClientError, KeyStore, Pairing, PairingError, VerificationError
from agent_relay.client.clock import HostClock
from agent_relay.client.frames import FrameSigner, FrameVerifier, close_payload
from agent_relay.client.pairing import ClientPairing, check_code
from agent_relay.client.signing import (
    SignedRequest,
    StreamVerifier,
    check_response,
    sign_refresh,
    sign_request,
)
from agent_relay.trust import wire

HOST_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
CLIENT_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
SESSION = "7d2c3a8e-5b9f-4c1e-9a6d-0f4b2e8c1d3a"


# ---------------------------------------------------------------- a host half, from wire.py


def host_answers_pairing(
    code: str, start: dict[str, str], *, host_code: str | None = None
) -> tuple[dict[str, str], bytes]:
    """spake2/start on the host: side B against its code; returns answer and shared key."""
    side_b = SPAKE2_B(
        (host_code or code).encode(),
        idA=wire.SPAKE2_CLIENT_IDENTITY,
        idB=wire.SPAKE2_SERVER_IDENTITY,
    )
    server_message = side_b.start()
    key = side_b.finish(wire.b64decode(start["client_message_b64"]))
    answer = {
        "enrollment_id": str(uuid.uuid4()),
        "server_message_b64": wire.b64encode(server_message),
    }
    return answer, key


def host_finishes_pairing(shared_key: bytes, finish: dict[str, str]) -> dict[str, str]:
    ck = wire.confirmation_key(shared_key)
    client_public = wire.b64decode(finish["public_key_b64"])
    expected = wire.client_proof(ck, finish["enrollment_id"], client_public)
    assert wire.b64decode(finish["client_proof_b64"]) == expected
    host_public = HOST_KEY.public_key().public_bytes_raw()
    proof = wire.server_proof(ck, finish["enrollment_id"], client_public, host_public)
    return {
        "signing_session_id": SESSION,
        "server_public_key_b64": wire.b64encode(host_public),
        "server_proof_b64": wire.b64encode(proof),
    }


def signed_request(path: str = "/api/x?y=1", body: bytes = b"") -> SignedRequest:
    return sign_request(CLIENT_KEY, SESSION, "POST", path, body, 1_700_000_000)


def host_headers(
    request: SignedRequest, status: int, h_body: str, *, streamed: bool = False
) -> tuple[dict[str, str], str]:
    response_nonce = str(uuid.uuid4())
    message = wire.response_message(
        1_700_000_001,
        status,
        request.path_and_query,
        request.session_id,
        request.nonce,
        response_nonce,
        h_body,
    )
    headers = {
        wire.RESP_TS: "1700000001",
        wire.RESP_NONCE: response_nonce,
        wire.RESP_SIGNATURE: wire.b64encode(HOST_KEY.sign(message)),
    }
    if streamed:
        headers[wire.RESP_BODY_SIGNING] = wire.STREAM_SIGNING_V1
    return headers, response_nonce


def host_records(request: SignedRequest, response_nonce: str, payloads: list[bytes]) -> bytes:
    out = bytearray()
    for seq, payload in enumerate([*payloads, b""], start=1):
        message = wire.stream_chunk_message(
            request.session_id, request.nonce, response_nonce, seq, payload
        )
        out += wire.CHUNK_HEADER.pack(len(payload)) + payload + HOST_KEY.sign(message)
    return bytes(out)


def streamed_answer(
    payloads: list[bytes], request: SignedRequest | None = None
) -> tuple[SignedRequest, dict[str, str], bytes]:
    request = request or signed_request()
    headers, response_nonce = host_headers(request, 200, wire.STREAM_SIGNING_V1, streamed=True)
    return request, headers, host_records(request, response_nonce, payloads)


def read_stream(request: SignedRequest, headers: dict[str, str], body: bytes, cut: int) -> bytes:
    check = check_response(HOST_KEY.public_key(), request, 200, headers)
    out = b"".join(check.feed(body[:cut]) + check.feed(body[cut:]))
    check.finish()
    return out


# ---------------------------------------------------------------- pairing


def test_pairing_with_the_right_code() -> None:
    attempt = ClientPairing(" ab12cd ", CLIENT_KEY, "client-1")
    start = attempt.start_request()
    assert set(start) == {"client_message_b64"}  # never the code (docs/protocol.md section 7)
    assert wire.b64decode(start["client_message_b64"])[:1] == b"A"
    answer, key = host_answers_pairing("AB12CD", start)
    finish = attempt.finish_request(answer, client_name="laptop")
    assert finish["client_id"] == "client-1"
    paired = attempt.check_finish(host_finishes_pairing(key, finish))
    assert paired.signing_session_id == SESSION
    assert paired.server_public_key == HOST_KEY.public_key().public_bytes_raw()


def test_pairing_with_a_wrong_code_fails_on_the_server_proof() -> None:
    attempt = ClientPairing("AB12CD", CLIENT_KEY, "client-1")
    answer, key = host_answers_pairing("AB12CD", attempt.start_request(), host_code="AB12CE")
    finish = attempt.finish_request(answer, client_name="laptop")
    ck = wire.confirmation_key(key)  # the host's key differs: its proof cannot match
    host_public = HOST_KEY.public_key().public_bytes_raw()
    proof = wire.server_proof(
        ck, finish["enrollment_id"], wire.b64decode(finish["public_key_b64"]), host_public
    )
    with pytest.raises(PairingError, match="proof is wrong"):
        attempt.check_finish(
            {
                "signing_session_id": SESSION,
                "server_public_key_b64": wire.b64encode(host_public),
                "server_proof_b64": wire.b64encode(proof),
            }
        )


def test_a_relay_cannot_swap_the_host_key() -> None:
    attempt = ClientPairing("AB12CD", CLIENT_KEY, "client-1")
    answer, key = host_answers_pairing("AB12CD", attempt.start_request())
    finished = host_finishes_pairing(key, attempt.finish_request(answer, client_name="x"))
    relay_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    finished["server_public_key_b64"] = wire.b64encode(relay_key)
    with pytest.raises(PairingError, match="proof is wrong"):
        attempt.check_finish(finished)


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"enrollment_id": "nope", "server_message_b64": ""},
        {"enrollment_id": str(uuid.uuid4()), "server_message_b64": "QQ=="},
        {"enrollment_id": str(uuid.uuid4()), "server_message_b64": 5},
        # our own side byte reflected back
        {"enrollment_id": str(uuid.uuid4()), "server_message_b64": wire.b64encode(b"A" * 33)},
        # a point not on the curve
        {
            "enrollment_id": str(uuid.uuid4()),
            "server_message_b64": wire.b64encode(b"B" + b"\xff" * 32),
        },
    ],
)
def test_bad_start_answers_are_pairing_errors(answer: dict[str, object]) -> None:
    attempt = ClientPairing("AB12CD", CLIENT_KEY, "client-1")
    with pytest.raises(PairingError):
        attempt.finish_request(answer, client_name="x")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=60)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
pairing_fields = ["enrollment_id", "server_message_b64", "signing_session_id"]
pairing_fields += ["server_public_key_b64", "server_proof_b64"]


@given(
    st.dictionaries(st.sampled_from(pairing_fields), json_values | st.just(str(uuid.uuid4()))),
    st.dictionaries(st.sampled_from(pairing_fields), json_values),
)
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
def test_pairing_raises_only_its_error(start: dict[str, object], finish: dict[str, object]) -> None:
    attempt = ClientPairing("AB12CD", CLIENT_KEY, "client-1")
    with contextlib.suppress(PairingError):
        attempt.finish_request(start, client_name="x")
    with pytest.raises(PairingError):
        attempt.check_finish(finish)


@pytest.mark.parametrize("code", ["", "ABCDE", "ABCDEFG", "AB-12C", "ÀBCDEF"])
def test_malformed_codes_are_refused(code: str) -> None:
    with pytest.raises(PairingError):
        check_code(code)


# ---------------------------------------------------------------- requests


def test_request_signature_covers_the_canonical_string() -> None:
    signed = sign_request(CLIENT_KEY, SESSION, "post", "/a?b=1", b"{}", 1700000000, "n-1")
    message = f"v1|1700000000|POST|/a?b=1|{SESSION}|n-1|{wire.body_hash(b'{}')}".encode()
    CLIENT_KEY.public_key().verify(wire.b64decode(signed.signature_b64), message)
    assert signed.headers()[wire.ACCEPT_STREAM_SIGNING] == "1"
    assert signed.headers()[wire.SIG_TS] == "1700000000"


def test_refresh_signature() -> None:
    payload = sign_refresh(CLIENT_KEY, "client-1", 1700000000)
    message = wire.refresh_message(1700000000, payload["nonce"], "client-1")
    CLIENT_KEY.public_key().verify(wire.b64decode(payload["signature_b64"]), message)


def test_form_urlencode_is_the_whatwg_serializer() -> None:
    pairs = [("a b", "c~d*e"), ("ü", "&=+"), ("k", "")]
    assert wire.form_urlencode(pairs) == "a+b=c%7Ed*e&%C3%BC=%26%3D%2B&k="
    assert wire.signed_ws_path("/ws", []) == "/ws"
    assert wire.signed_ws_path("/ws", [("x", "1")]) == "/ws?x=1"


# ---------------------------------------------------------------- whole-body answers


def test_whole_body_answer_verifies() -> None:
    request = signed_request()
    headers, _ = host_headers(request, 200, wire.body_hash(b"hello"))
    check = check_response(HOST_KEY.public_key(), request, 200, headers)
    assert not check.streamed
    assert check.feed(b"hel") == []
    assert check.feed(b"lo") == []
    check.finish()


@pytest.mark.parametrize(
    ("status", "body", "other_request"),
    [
        (200, b"hellO", False),  # body altered
        (500, b"hello", False),  # status altered
        (200, b"hello", True),  # an answer to another request
    ],
)
def test_altered_whole_body_answers_fail(status: int, body: bytes, other_request: bool) -> None:
    request = signed_request()
    headers, _ = host_headers(request, 200, wire.body_hash(b"hello"))
    asked = signed_request() if other_request else request
    check = check_response(HOST_KEY.public_key(), asked, status, headers)
    check.feed(body)
    with pytest.raises(VerificationError):
        check.finish()


def test_unsigned_and_unknown_mode_answers_fail() -> None:
    request = signed_request()
    with pytest.raises(VerificationError, match="no host signature"):
        check_response(HOST_KEY.public_key(), request, 200, {})
    headers, _ = host_headers(request, 200, wire.body_hash(b""))
    with pytest.raises(VerificationError, match="unknown response body signing"):
        check_response(
            HOST_KEY.public_key(), request, 200, {**headers, wire.RESP_BODY_SIGNING: "none"}
        )


def test_a_relay_cannot_switch_between_whole_and_streamed() -> None:
    request, headers, body = streamed_answer([b"data"])
    stripped = {k: v for k, v in headers.items() if k != wire.RESP_BODY_SIGNING}
    check = check_response(HOST_KEY.public_key(), request, 200, stripped)
    check.feed(body)
    with pytest.raises(VerificationError):
        check.finish()
    whole, _ = host_headers(request, 200, wire.body_hash(b"x"))
    with pytest.raises(VerificationError):
        check_response(
            HOST_KEY.public_key(),
            request,
            200,
            {**whole, wire.RESP_BODY_SIGNING: wire.STREAM_SIGNING_V1},
        )


# ---------------------------------------------------------------- streamed answers


@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=6),
    st.integers(min_value=0, max_value=3000),
)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_stream_verifies_however_it_is_cut(payloads: list[bytes], cut: int) -> None:
    request, headers, body = streamed_answer(payloads)
    assert read_stream(request, headers, body, min(cut, len(body))) == b"".join(payloads)


def test_stream_one_byte_at_a_time() -> None:
    request, headers, body = streamed_answer([b"a" * 100, b"b" * 5])
    check = check_response(HOST_KEY.public_key(), request, 200, headers)
    out = [p for i in range(len(body)) for p in check.feed(body[i : i + 1])]
    check.finish()
    assert out == [b"a" * 100, b"b" * 5]


def test_truncated_stream_fails() -> None:
    request, headers, body = streamed_answer([b"one", b"two"])
    check = check_response(HOST_KEY.public_key(), request, 200, headers)
    # cut before the final (empty) record: the data so far verified, the end did not come
    final = wire.CHUNK_HEADER.size + wire.SIGNATURE_SIZE
    assert check.feed(body[:-final]) == [b"one", b"two"]
    with pytest.raises(VerificationError, match="cut short"):
        check.finish()


def test_reordered_records_fail() -> None:
    request, headers, body = streamed_answer([b"one", b"two"])
    size = wire.CHUNK_HEADER.size + 3 + wire.SIGNATURE_SIZE
    swapped = body[size : 2 * size] + body[:size] + body[2 * size :]
    check = check_response(HOST_KEY.public_key(), request, 200, headers)
    with pytest.raises(VerificationError, match="record 1"):
        check.feed(swapped)


def test_records_from_another_answer_fail() -> None:
    request, headers, _ = streamed_answer([b"one"])
    _, _, other_body = streamed_answer([b"one"], request)  # same request, other answer
    check = check_response(HOST_KEY.public_key(), request, 200, headers)
    with pytest.raises(VerificationError):
        check.feed(other_body)


def test_altered_record_and_trailing_data_fail() -> None:
    request, headers, body = streamed_answer([b"one"])
    altered = body[:4] + b"One" + body[7:]
    with pytest.raises(VerificationError):
        check_response(HOST_KEY.public_key(), request, 200, headers).feed(altered)
    check = check_response(HOST_KEY.public_key(), request, 200, headers)
    with pytest.raises(VerificationError, match="after the final record"):
        check.feed(body + b"x")


def test_oversized_record_claim_fails_before_buffering() -> None:
    verifier = StreamVerifier(HOST_KEY.public_key(), SESSION, "n", "r")
    with pytest.raises(VerificationError, match="claims"):
        verifier.feed(wire.CHUNK_HEADER.pack(wire.MAX_CHUNK_PAYLOAD + 1))


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_stream_verifier_raises_only_its_error(pieces: list[bytes]) -> None:
    verifier = StreamVerifier(HOST_KEY.public_key(), SESSION, "n", "r")
    try:
        for piece in pieces:
            assert verifier.feed(piece) == []  # nothing unsigned ever comes out
        verifier.finish()
    except VerificationError:
        return
    raise AssertionError("arbitrary bytes verified")


header_values = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["1", "chunked-v1"]))


@given(
    st.integers(min_value=100, max_value=599),
    st.fixed_dictionaries(
        {},
        optional={
            wire.RESP_TS: header_values,
            wire.RESP_NONCE: header_values,
            wire.RESP_SIGNATURE: st.one_of(
                header_values, st.binary(min_size=64, max_size=64).map(wire.b64encode)
            ),
            wire.RESP_BODY_SIGNING: header_values,
        },
    ),
    st.binary(max_size=300),
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_response_check_raises_only_its_error(
    status: int, raw: dict[str, str | None], body: bytes
) -> None:
    headers = {k: v for k, v in raw.items() if v is not None}
    try:
        check = check_response(HOST_KEY.public_key(), signed_request(), status, headers)
        assert check.feed(body) == []
        check.finish()
    except VerificationError:
        return
    raise AssertionError("a forged answer verified")


# ---------------------------------------------------------------- frames


def host_frames(nonce: str) -> FrameSigner:
    return FrameSigner(HOST_KEY, SESSION, nonce)


def test_frames_in_order_verify_and_reorder_fails() -> None:
    signer = host_frames("up-1")
    first, second = signer.sign("text", b"one"), signer.sign("binary", b"\x00\x01")
    verifier = FrameVerifier(HOST_KEY.public_key(), SESSION, "up-1")
    assert verifier.open(first).text == "one"
    assert verifier.open(second).payload == b"\x00\x01"
    fresh = FrameVerifier(HOST_KEY.public_key(), SESSION, "up-1")
    with pytest.raises(VerificationError, match="arrived where 1 was due"):
        fresh.open(second)
    with pytest.raises(VerificationError, match="arrived where 3 was due"):
        verifier.open(first)  # replayed


def test_frames_of_another_upgrade_or_altered_fail() -> None:
    frame = host_frames("up-1").sign("text", b"one")
    with pytest.raises(VerificationError):
        FrameVerifier(HOST_KEY.public_key(), SESSION, "up-2").open(frame)
    envelope = json.loads(frame)
    envelope["payload_b64"] = wire.b64encode(b"two")
    with pytest.raises(VerificationError):
        FrameVerifier(HOST_KEY.public_key(), SESSION, "up-1").open(json.dumps(envelope))
    envelope = json.loads(frame)
    envelope["msg_type"] = "binary"
    with pytest.raises(VerificationError):
        FrameVerifier(HOST_KEY.public_key(), SESSION, "up-1").open(json.dumps(envelope))


def test_client_frames_are_signed_with_the_client_key() -> None:
    envelope = json.loads(
        FrameSigner(CLIENT_KEY, SESSION, "up-1").sign("close", close_payload(1000, "bye"))
    )
    assert envelope["seq"] == 1
    assert envelope["version"] == 1
    payload = base64.b64decode(envelope["payload_b64"])
    assert payload == b"\x03\xe8bye"
    message = wire.frame_message(SESSION, "up-1", 1, "close", payload)
    CLIENT_KEY.public_key().verify(base64.b64decode(envelope["signature_b64"]), message)


@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        st.dictionaries(
            st.sampled_from(["version", "seq", "msg_type", "payload_b64", "signature_b64"]),
            st.one_of(st.integers(), st.text(max_size=90), st.none(), st.booleans()),
        ).map(json.dumps),
    )
)
def test_frame_verifier_raises_only_its_error(message: str | bytes) -> None:
    with pytest.raises(VerificationError):
        FrameVerifier(HOST_KEY.public_key(), SESSION, "up-1").open(message)


# ---------------------------------------------------------------- clock


def test_host_clock_trusts_signed_time_and_bounds_unsigned() -> None:
    clock = HostClock(lambda: 1000.0, max_unverified=90)
    assert clock.observe("1060", verified=False)
    assert clock.now() == 1060
    assert not clock.observe("5000", verified=False)
    assert clock.now() == 1060
    assert clock.observe("5000", verified=True)
    assert clock.now() == 5000
    assert not clock.observe("soon", verified=True)
    assert not clock.observe(None, verified=True)


# ---------------------------------------------------------------- key store


def pairing(relay: str = "http://Relay.example:8082/") -> Pairing:
    return Pairing(
        relay_url="http://relay.example:8082",
        host_id=str(uuid.uuid4()),
        client_id="client-1",
        client_key=CLIENT_KEY,
        host_public_key=HOST_KEY.public_key().public_bytes_raw(),
        signing_session_id=SESSION,
    )


def test_key_store_round_trip_is_0600(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    saved = pairing()
    path = store.save(saved)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = store.load("HTTP://relay.example:8082/", saved.host_id)
    assert loaded.client_key.private_bytes_raw() == CLIENT_KEY.private_bytes_raw()
    assert loaded.host_public_key == saved.host_public_key
    assert store.find(None, None).host_id == saved.host_id
    other = store.save(pairing())
    assert other != path
    with pytest.raises(ClientError, match="several pairings"):
        store.find(None, None)
    assert store.find("http://relay.example:8082", saved.host_id).client_id == "client-1"


def test_key_store_refuses_readable_and_broken_files(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    path = store.save(pairing())
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError):
        store.all()
    os.chmod(path, 0o600)
    path.write_text("{}")
    with pytest.raises(ClientError, match="not a valid pairing file"):
        store.all()
    with pytest.raises(ClientError, match="http"):
        store.path_for("ftp://x", str(uuid.uuid4()))

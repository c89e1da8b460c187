"""Arbitrary input to the request verifier, the frame decoder and the pairing routes:
always a clean refusal with a reason, never another exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay.trust import TrustHost, wire
from agent_relay.trust.errors import TrustError
from agent_relay.trust.frames import FrameError
from agent_relay.trust.host import API_PREFIX
from tests.support.trustpeer import Pairing, Peer

from .test_trust_core import NOW, call

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def paired_host(tmp: Path) -> tuple[TrustHost, Peer]:
    host = TrustHost.open(tmp)
    code = host.issue_code(NOW).code
    pairing = Pairing(code)
    _, answer, _ = call(host, "POST", API_PREFIX + "spake2/start", pairing.start_body())
    peer = Peer()
    _, answer, _ = call(
        host, "POST", API_PREFIX + "spake2/finish", peer.finish_body(pairing, answer["data"])
    )
    peer.accept_finish(answer["data"])
    return host, peer


_state: dict[str, Any] = {}


def shared(tmp_path_factory: Any) -> tuple[TrustHost, Peer]:
    if "host" not in _state:
        _state["host"] = paired_host(tmp_path_factory.mktemp("fuzz"))
    return _state["host"]  # type: ignore[no-any-return]


texts = st.text(max_size=80)
field_values = st.one_of(
    texts,
    st.integers(-(2**70), 2**70).map(str),
    st.just(str(int(NOW))),
    st.binary(min_size=0, max_size=80).map(wire.b64encode),
)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "\x00", ""]),
    target=st.one_of(texts, texts.map(lambda t: "/x?" + t)),
    fields=st.dictionaries(st.sampled_from(wire.REQUEST_SIGNATURE_FIELDS), field_values),
    extra=st.dictionaries(texts, texts, max_size=3),
    real_session=st.booleans(),
    allow_query=st.booleans(),
)
def test_request_verifier_never_raises_anything_else(
    tmp_path_factory: Any,
    method: str,
    target: str,
    fields: dict[str, str],
    extra: dict[str, str],
    real_session: bool,
    allow_query: bool,
) -> None:
    host, peer = shared(tmp_path_factory)
    headers = {**extra, **fields}
    if real_session and wire.SIG_SESSION in headers:
        headers[wire.SIG_SESSION] = peer.session_id
    with pytest.raises(TrustError) as caught:
        host.verify(method, target, headers, wire.EMPTY_BODY_HASH, NOW, allow_query=allow_query)
    assert caught.value.status in (401, 429)
    assert caught.value.reason


envelope = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(st.just(1), st.integers(), texts, st.none()),
        "seq": st.one_of(st.just(1), st.integers(), st.booleans(), texts, st.floats()),
        "msg_type": st.one_of(st.sampled_from(["text", "binary", "ping", "close"]), texts),
        "payload_b64": st.one_of(st.binary(max_size=40).map(wire.b64encode), texts, st.integers()),
        "signature_b64": st.one_of(st.binary(max_size=70).map(wire.b64encode), texts),
    },
)


@FUZZ
@given(
    message=st.one_of(
        st.binary(max_size=200),
        texts,
        envelope.map(json.dumps),
        st.recursive(st.none() | st.integers(), lambda c: st.lists(c), max_leaves=20).map(
            json.dumps
        ),
    )
)
def test_frame_decoder_never_raises_anything_else(
    tmp_path_factory: Any, message: str | bytes
) -> None:
    host, peer = shared(tmp_path_factory)
    verified = host.verify(
        "GET", "/ws", peer.sign("GET", "/ws", b"", int(NOW)), wire.EMPTY_BODY_HASH, NOW
    )
    codec = host.frame_codec(verified)
    with pytest.raises(FrameError) as caught:
        codec.decode(message)
    assert caught.value.reason in ("bad_frame", "bad_sequence", "bad_signature", "frame_too_large")


@FUZZ
@given(
    path=st.sampled_from(["spake2/start", "spake2/finish", "signing-session/refresh", "clients"]),
    body=st.one_of(
        st.binary(max_size=100),
        st.dictionaries(
            st.sampled_from(
                [
                    "enrollment_code",
                    "client_message_b64",
                    "enrollment_id",
                    "client_id",
                    "public_key_b64",
                    "client_proof_b64",
                    "timestamp",
                    "nonce",
                    "signature_b64",
                ]
            ),
            st.one_of(texts, st.integers(), st.none(), st.booleans(), st.lists(st.integers())),
        ).map(lambda d: json.dumps(d).encode()),
    ),
)
def test_pairing_routes_answer_json_errors(tmp_path_factory: Any, path: str, body: bytes) -> None:
    host, _ = shared(tmp_path_factory)
    method = "GET" if path == "clients" else "POST"
    reply = host.handle_api(method, API_PREFIX + path, body, relayed=True, address="fuzz", now=NOW)
    answer = json.loads(reply.body)
    if reply.status != 200:
        assert reply.status in (400, 401, 429)
        assert answer["success"] is False
        assert answer["reason"]

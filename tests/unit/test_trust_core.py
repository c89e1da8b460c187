"""The host side of the trust layer without sockets: pairing, sessions, request checks,
response and stream signing, signed frames. Time is passed in."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent_relay.client import VerificationError
from agent_relay.client.signing import check_response, sign_request
from agent_relay.trust import TrustHost, TrustLimits, wire
from agent_relay.trust.errors import TrustError
from agent_relay.trust.frames import FrameCodec, FrameError
from agent_relay.trust.host import (
    CLIENTS_PATH,
    ENROLLMENT_CODE_PATH,
    FINISH_PATH,
    REFRESH_PATH,
    START_PATH,
    ApiReply,
)
from agent_relay.trust.ratelimit import KeyedRateLimiter
from agent_relay.trust.signing import BodyMode, choose_body_mode
from agent_relay.trust.store import EnrollmentCode, HostStorage, JsonClientStore, TrustedClient
from tests.support.trustpeer import Pairing, Peer, SignatureMismatch

NOW = 1_800_000_000.0


def call(
    host: TrustHost,
    method: str,
    path: str,
    body: Any = None,
    *,
    relayed: bool = True,
    address: str = "relay",
    now: float = NOW,
) -> tuple[int, dict[str, Any], ApiReply]:
    raw = b"" if body is None else json.dumps(body).encode()
    reply = host.handle_api(method, path, raw, relayed=relayed, address=address, now=now)
    return reply.status, json.loads(reply.body), reply


def pair(host: TrustHost, *, now: float = NOW, address: str = "relay") -> Peer:
    code = host.issue_code(now).code
    pairing = Pairing(code)
    status, answer, _ = call(
        host, "POST", START_PATH, pairing.start_body(), address=address, now=now
    )
    assert status == 200, answer
    peer = Peer()
    status, answer, _ = call(
        host, "POST", FINISH_PATH, peer.finish_body(pairing, answer["data"]), now=now
    )
    assert status == 200, answer
    peer.accept_finish(answer["data"])
    return peer


@pytest.fixture
def host(tmp_path: Path) -> TrustHost:
    return TrustHost.open(tmp_path / "data")


def test_pairing_stores_the_client_and_opens_a_session(host: TrustHost, tmp_path: Path) -> None:
    peer = pair(host)
    assert [c.client_id for c in host.list_clients()] == [peer.client_id]
    assert len(host.sessions) == 1
    for name in ("host-ed25519.key", "trusted-clients.sqlite3"):
        mode = stat.S_IMODE(os.stat(tmp_path / "data" / name).st_mode)
        assert mode == 0o600, name
    assert len((tmp_path / "data" / "host-ed25519.key").read_bytes()) == 32
    # The same host key after a restart.
    again = TrustHost.open(tmp_path / "data")
    assert again.public_key_b64 == host.public_key_b64
    assert [c.client_id for c in again.list_clients()] == [peer.client_id]


def test_explicit_code_must_match_and_a_wrong_one_burns_the_code(host: TrustHost) -> None:
    code = host.issue_code(NOW).code
    status, answer, reply = call(
        host, "POST", START_PATH, Pairing("ZZZZZZ").start_body(send_code=True)
    )
    assert (status, answer["reason"]) == (401, "bad_code")
    assert (wire.HOST_TIME.encode(), str(int(NOW)).encode()) in reply.headers
    assert host.current_code(NOW) is None
    status, answer, _ = call(host, "POST", START_PATH, Pairing(code).start_body(send_code=True))
    assert (status, answer["reason"]) == (401, "code_expired")
    # A matching code (normalized: trimmed, any case) works.
    code = host.issue_code(NOW).code
    pairing = Pairing(code)
    body = pairing.start_body()
    body["enrollment_code"] = f"  {code.lower()} "
    status, answer, _ = call(host, "POST", START_PATH, body)
    assert status == 200


def test_wrong_code_fails_the_proof_and_the_code_is_single_use(host: TrustHost) -> None:
    code = host.issue_code(NOW).code
    wrong = "A" * 6 if code != "A" * 6 else "B" * 6
    pairing = Pairing(wrong)
    status, answer, _ = call(host, "POST", START_PATH, pairing.start_body())
    assert status == 200  # the host cannot know yet: SPAKE2 gives nothing away
    peer = Peer()
    body = peer.finish_body(pairing, answer["data"])
    status, answer, _ = call(host, "POST", FINISH_PATH, body)
    assert (status, answer["reason"]) == (401, "bad_proof")
    assert host.list_clients() == []
    # The enrollment is gone, and so is the code.
    status, answer, _ = call(host, "POST", FINISH_PATH, body)
    assert (status, answer["reason"]) == (401, "unknown_enrollment")
    status, answer, _ = call(host, "POST", START_PATH, Pairing(code).start_body())
    assert (status, answer["reason"]) == (401, "code_expired")


def test_code_and_enrollment_expire(host: TrustHost) -> None:
    code = host.issue_code(NOW).code
    later = NOW + host.limits.code_ttl + 1
    status, answer, _ = call(host, "POST", START_PATH, Pairing(code).start_body(), now=later)
    assert (status, answer["reason"]) == (401, "code_expired")
    code = host.issue_code(NOW).code
    pairing = Pairing(code)
    _, answer, _ = call(host, "POST", START_PATH, pairing.start_body())
    body = Peer().finish_body(pairing, answer["data"])
    late = NOW + host.limits.enrollment_ttl + 1
    status, answer, _ = call(host, "POST", FINISH_PATH, body, now=late)
    assert (status, answer["reason"]) == (401, "code_expired")


def test_enrollment_code_is_local_only(host: TrustHost) -> None:
    status, answer, _ = call(host, "POST", ENROLLMENT_CODE_PATH, relayed=True)
    assert (status, answer["reason"]) == (403, "local_only")
    status, answer, _ = call(host, "POST", ENROLLMENT_CODE_PATH, relayed=False)
    assert status == 200
    code = answer["data"]["enrollment_code"]
    assert len(code) == 6
    assert set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    assert answer["success"] is True
    assert answer["message"] is None
    assert host.current_code(NOW + 1) is not None  # issued now by the real clock, still valid


def test_bad_pairing_input_is_a_clean_400(host: TrustHost) -> None:
    host.issue_code(NOW)
    for body in (
        {},
        {"client_message_b64": "!!"},
        {"client_message_b64": wire.b64encode(b"B" + bytes(32))},
        {"client_message_b64": wire.b64encode(b"A" + bytes(31))},
    ):
        status, answer, _ = call(host, "POST", START_PATH, body)
        assert (status, answer["reason"]) == (400, "bad_request"), body
    assert host.current_code(NOW) is not None  # malformed requests do not burn the code
    reply = host.handle_api("POST", START_PATH, b"[1", relayed=True, address="x", now=NOW)
    assert reply.status == 400
    status, answer, _ = call(host, "GET", START_PATH)
    assert status == 405
    status, answer, _ = call(host, "POST", FINISH_PATH, {"enrollment_id": "nope"})
    assert (status, answer["reason"]) == (400, "bad_request")


def test_rate_limit_per_address_does_not_lock_out_the_owner(host: TrustHost) -> None:
    attacker = "relay:6.6.6.6"
    guess = Pairing("AAAAAA").start_body()
    for _ in range(host.limits.pair_burst):
        host.issue_code(NOW)
        status, _, _ = call(host, "POST", START_PATH, guess, address=attacker)
        assert status == 200  # a start uses the code up; the guess fails at finish
    host.issue_code(NOW)
    status, answer, reply = call(host, "POST", START_PATH, guess, address=attacker)
    assert (status, answer["reason"]) == (429, "rate_limited")
    assert dict(reply.headers)[b"retry-after"] == b"60"
    assert host.current_code(NOW) is not None  # a refused attempt does not burn the code
    # The owner, elsewhere, pairs fine.
    pair(host, address="relay:10.0.0.7")
    # Polling while no code is active costs nothing; a code to use up is charged.
    for _ in range(50):
        status, answer, _ = call(host, "POST", START_PATH, guess, address="relay:10.0.0.8")
        assert answer["reason"] == "code_expired"
    pair(host, address="relay:10.0.0.8")
    # The attacker gets one more try per refill period.
    host.issue_code(NOW)
    later = NOW + host.limits.pair_refill
    status, _, _ = call(host, "POST", START_PATH, guess, address=attacker, now=later)
    assert status == 200


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = KeyedRateLimiter(burst=1, refill_seconds=60, max_keys=100)
    for i in range(10_000):
        assert limiter.take(f"a{i}", NOW) is None
    assert len(limiter) == 100
    assert limiter.take("a9999", NOW) == 60


def signed(
    host: TrustHost,
    peer: Peer,
    method: str,
    target: str,
    body: bytes = b"",
    now: float = NOW,
    **kw: Any,
) -> Any:
    headers = peer.sign(method, target, body, int(now), **kw)
    return host.verify(method, target, headers, wire.body_hash(body), now)


def reason(
    host: TrustHost,
    peer: Peer,
    headers: dict[str, str],
    *,
    body: bytes = b"",
    now: float = NOW,
    target: str = "/x",
) -> str:
    with pytest.raises(TrustError) as caught:
        host.verify("POST", target, headers, wire.body_hash(body), now)
    assert caught.value.status in (401, 429)
    return caught.value.reason


def test_request_checks(host: TrustHost) -> None:
    peer = pair(host)
    verified = signed(host, peer, "POST", "/api/x?a=1", b"hello")
    assert verified.client_id == peer.client_id
    assert reason(host, peer, {}) == "missing_signature"
    headers = peer.sign("POST", "/x", b"", int(NOW))
    partial = dict(headers)
    del partial[wire.SIG_NONCE]
    assert reason(host, peer, partial) == "partial_signature"
    assert reason(host, peer, peer.sign("POST", "/x", b"", int(NOW) - 31)) == "clock_skew"
    assert reason(host, peer, peer.sign("POST", "/x", b"", int(NOW) + 31)) == "clock_skew"
    assert signed(host, peer, "POST", "/x", now=NOW + 30) is not None  # within ±30 s
    # Tampered body, path, method.
    assert reason(host, peer, headers, body=b"changed") == "bad_signature"
    assert reason(host, peer, headers, target="/y") == "bad_signature"
    # A failed check does not burn the nonce; a good one does.
    assert host.verify("POST", "/x", headers, wire.EMPTY_BODY_HASH, NOW) is not None
    assert reason(host, peer, headers) == "replayed_nonce"
    unknown = dict(peer.sign("POST", "/x", b"", int(NOW)))
    unknown[wire.SIG_SESSION] = str(uuid.uuid4())
    assert reason(host, peer, unknown) == "unknown_session"


def test_session_expires_idle_and_absolute(host: TrustHost) -> None:
    peer = pair(host)
    limits = host.limits
    idle = NOW + limits.session_idle + 1
    assert (
        reason(host, peer, peer.sign("POST", "/x", b"", int(idle)), now=idle) == "session_expired"
    )
    # Kept alive by use, it still ends after the absolute limit.
    peer = pair(host)
    t = NOW
    while t + limits.session_idle / 2 < NOW + limits.session_ttl:
        t += limits.session_idle / 2
        assert signed(host, peer, "GET", "/x", now=t) is not None
    end = NOW + limits.session_ttl + 1
    assert reason(host, peer, peer.sign("POST", "/x", b"", int(end)), now=end) == "session_expired"


def test_refresh(host: TrustHost) -> None:
    peer = pair(host)
    old = peer.session_id
    body = peer.refresh_body(int(NOW))
    status, answer, _ = call(host, "POST", REFRESH_PATH, body)
    assert status == 200
    peer.session_id = answer["data"]["signing_session_id"]
    assert peer.session_id != old
    assert signed(host, peer, "GET", "/x") is not None
    status, answer, _ = call(host, "POST", REFRESH_PATH, body)
    assert (status, answer["reason"]) == (401, "replayed_nonce")
    status, answer, _ = call(host, "POST", REFRESH_PATH, peer.refresh_body(int(NOW) - 60))
    assert (status, answer["reason"]) == (401, "clock_skew")
    forged = peer.refresh_body(int(NOW))
    forged["client_id"] = str(uuid.uuid4())
    status, answer, _ = call(host, "POST", REFRESH_PATH, forged)
    assert (status, answer["reason"]) == (401, "unknown_client")
    stranger = Peer(client_id=peer.client_id)
    status, answer, _ = call(host, "POST", REFRESH_PATH, stranger.refresh_body(int(NOW)))
    assert (status, answer["reason"]) == (401, "bad_signature")


def test_revocation_ends_sessions_and_tells_watchers(host: TrustHost) -> None:
    peer = pair(host)
    other = pair(host)
    closed: list[str] = []
    host.watch(peer.session_id, lambda: closed.append("ws"))
    status, answer, _ = call(host, "GET", CLIENTS_PATH, relayed=False)
    assert {c["client_id"] for c in answer["data"]["clients"]} == {peer.client_id, other.client_id}
    status, answer, _ = call(host, "DELETE", f"{CLIENTS_PATH}/{peer.client_id}", relayed=False)
    assert status == 200
    assert answer["data"] == {"client_id": peer.client_id, "revoked": True}
    assert closed == ["ws"]
    assert reason(host, peer, peer.sign("POST", "/x", b"", int(NOW))) == "client_revoked"
    status, answer, _ = call(host, "POST", REFRESH_PATH, peer.refresh_body(int(NOW)))
    assert (status, answer["reason"]) == (401, "client_revoked")
    assert signed(host, other, "GET", "/x") is not None
    status, answer, _ = call(host, "DELETE", f"{CLIENTS_PATH}/{peer.client_id}", relayed=False)
    assert status == 404


def test_revocation_by_another_process_is_picked_up(host: TrustHost, tmp_path: Path) -> None:
    peer = pair(host)
    closed: list[bool] = []
    host.watch(peer.session_id, lambda: closed.append(True))
    TrustHost.open(tmp_path / "data").store.remove(peer.client_id)  # e.g. the CLI
    assert host.sync() == [peer.session_id]
    assert closed == [True]
    assert reason(host, peer, peer.sign("POST", "/x", b"", int(NOW))) == "client_revoked"


def test_reference_json_store(tmp_path: Path) -> None:
    keys = tmp_path / "trusted_ed25519_public_keys.json"
    host = TrustHost.open(tmp_path / "data", trusted_keys_file=keys)
    peer = pair(host)
    data = json.loads(keys.read_text())
    assert data["clients"][0]["client_id"] == peer.client_id
    assert data["clients"][0]["public_key_b64"] == peer.public_b64
    assert set(data["clients"][0]) >= {
        "client_id",
        "client_name",
        "client_browser",
        "client_os",
        "client_device",
        "public_key_b64",
    }
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert JsonClientStore(keys).remove(peer.client_id)
    assert JsonClientStore(keys).all() == []


def test_response_signature_and_stream_records(host: TrustHost) -> None:
    peer = pair(host)
    verified = signed(host, peer, "GET", "/files/a?x=1")
    signature = host.signer.sign(verified, 200, wire.body_hash(b"body"), NOW)
    headers = {k.decode(): v.decode() for k, v in signature.headers()}
    assert peer.check_response(200, headers, b"body", "/files/a?x=1", verified.nonce) == b"body"
    with pytest.raises(SignatureMismatch):
        peer.check_response(200, headers, b"bodY", "/files/a?x=1", verified.nonce)
    with pytest.raises(SignatureMismatch):
        peer.check_response(201, headers, b"body", "/files/a?x=1", verified.nonce)
    # Streamed: records of at most 64 KiB, each signed, an empty one at the end.
    streamed = host.signer.sign(verified, 200, wire.STREAM_SIGNING_V1, NOW)
    stream = host.signer.stream(verified, streamed)
    data = os.urandom(150_000)
    framed = stream.feed(data[:100]) + stream.feed(data[100:]) + stream.end()
    assert stream.seq == 5  # 100, 65536, 65536, 18828, end
    headers = {k.decode(): v.decode() for k, v in streamed.headers()}
    headers[wire.RESP_BODY_SIGNING] = wire.STREAM_SIGNING_V1
    assert peer.check_response(200, headers, framed, "/files/a?x=1", verified.nonce) == data
    with pytest.raises(SignatureMismatch):  # truncated before the end record
        peer.check_response(200, headers, framed[:-68], "/files/a?x=1", verified.nonce)
    tampered = bytearray(framed)
    tampered[10] ^= 1
    with pytest.raises(SignatureMismatch):
        peer.check_response(200, headers, bytes(tampered), "/files/a?x=1", verified.nonce)


def test_body_mode_choice(host: TrustHost) -> None:
    peer = pair(host)
    plain = signed(host, peer, "GET", "/x")
    streaming = host.verify(
        "GET",
        "/x",
        {**peer.sign("GET", "/x", b"", int(NOW)), wire.ACCEPT_STREAM_SIGNING: "1"},
        wire.EMPTY_BODY_HASH,
        NOW,
    )
    limits = TrustLimits()
    small = [(b"content-length", b"10")]
    big = [(b"content-length", str(limits.response_buffer_limit + 1).encode())]
    sse = [(b"content-type", b"text/event-stream")]
    assert choose_body_mode(plain, 200, small, limits) is BodyMode.BUFFERED
    assert choose_body_mode(plain, 200, big, limits) is BodyMode.UNSIGNED
    assert choose_body_mode(streaming, 200, big, limits) is BodyMode.CHUNKED
    assert choose_body_mode(streaming, 200, [], limits) is BodyMode.CHUNKED
    assert choose_body_mode(streaming, 200, small + sse, limits) is BodyMode.CHUNKED
    assert choose_body_mode(streaming, 204, [], limits) is BodyMode.BUFFERED
    assert choose_body_mode(streaming, 200, big, limits, head=True) is BodyMode.BUFFERED


def test_signed_frames(host: TrustHost) -> None:
    peer = pair(host)
    target, nonce = peer.signed_query("/api/terminal", int(NOW), cols="80")
    verified = host.verify("GET", target, {}, wire.EMPTY_BODY_HASH, NOW, allow_query=True)
    assert verified.path_and_query == "/api/terminal?cols=80"
    codec = host.frame_codec(verified)
    assert codec.decode(peer.frame(1, nonce, "text", b"ls\n")) == ("text", b"ls\n")
    assert codec.decode(peer.frame(2, nonce, "binary", b"\x00\xff")) == ("binary", b"\x00\xff")
    out = codec.encode("text", b"hello")
    assert peer.open_frame(1, nonce, out) == ("text", b"hello")
    with pytest.raises(FrameError) as caught:  # replayed
        codec.decode(peer.frame(2, nonce, "binary", b"\x00\xff"))
    assert caught.value.reason == "bad_sequence"
    with pytest.raises(FrameError) as caught:  # skipped one
        codec.decode(peer.frame(4, nonce, "text", b"x"))
    assert caught.value.reason == "bad_sequence"
    forged = json.loads(peer.frame(3, nonce, "text", b"rm -rf /"))
    forged["payload_b64"] = wire.b64encode(b"rm -rf ~")
    with pytest.raises(FrameError) as caught:
        codec.decode(json.dumps(forged))
    assert caught.value.reason == "bad_signature"
    other_socket = FrameCodec(
        verified.session_id, "another-nonce", host.host_key, peer.key.public_key()
    )
    with pytest.raises(FrameError):
        other_socket.decode(peer.frame(1, nonce, "text", b"x"))


def test_query_signature_canonical_form_is_whatwg(host: TrustHost) -> None:
    peer = pair(host)
    target, _ = peer.signed_query("/ws", int(NOW), q="a b~*", x="é&")
    verified = host.verify("GET", target, {}, wire.EMPTY_BODY_HASH, NOW, allow_query=True)
    assert verified.path_and_query == "/ws?q=a+b%7E*&x=%C3%A9%26"


class _MemoryClients:
    def __init__(self) -> None:
        self.clients: dict[str, TrustedClient] = {}

    def all(self) -> list[TrustedClient]:
        return list(self.clients.values())

    def get(self, client_id: str) -> TrustedClient | None:
        return self.clients.get(client_id)

    def add(self, client: TrustedClient) -> None:
        self.clients[client.client_id] = client

    def remove(self, client_id: str) -> bool:
        return self.clients.pop(client_id, None) is not None

    def version(self) -> object:
        return tuple(self.clients)


class _MemoryCodes:
    def __init__(self) -> None:
        self.code: EnrollmentCode | None = None

    def save(self, code: EnrollmentCode) -> None:
        self.code = code

    def load(self, now: float) -> EnrollmentCode | None:
        return self.code if self.code is not None and self.code.expires_at > now else None

    def burn(self) -> None:
        self.code = None


def test_a_trust_host_keeps_what_it_is_handed(tmp_path: Path, monkeypatch: Any) -> None:
    # The core opens no file and reads no clock: storage and `now` come from the adapter.
    monkeypatch.chdir(tmp_path)
    clients, codes = _MemoryClients(), _MemoryCodes()
    host = TrustHost(HostStorage(Ed25519PrivateKey.generate(), clients, codes))
    code = host.issue_code(NOW)
    assert codes.code == code
    assert host.current_code(NOW) == code
    assert host.current_code(code.expires_at) is None  # expiry by the `now` handed in
    peer = pair(host)
    assert [c.client_id for c in clients.all()] == [peer.client_id]
    assert codes.code is None  # pairing burnt it
    assert list(tmp_path.iterdir()) == []


def _lines(headers: dict[str, str]) -> list[tuple[str, str]]:
    return list(headers.items())


def test_answer_headers_are_signed_for_a_client_that_reads_them(host: TrustHost) -> None:
    """Negotiation (docs/signing.md): a request signed the original way that says it reads
    signed answer headers gets them, bound into the signature; removing the list fails it."""
    peer = pair(host)
    assert peer.host_key is not None
    request = sign_request(peer.key, peer.session_id, "GET", "/a", b"", int(NOW))
    sent = request.headers()
    assert wire.SIG_HEADERS not in sent
    assert sent[wire.ACCEPT_SIGNED_HEADERS] == "1"
    verified = host.verify("GET", "/a", sent, wire.EMPTY_BODY_HASH, NOW)
    assert verified.signed_headers is None
    assert verified.signs_answer_headers
    answer = [(b"content-type", b"text/plain"), (b"x-app", b"1")]
    signature = host.signer.sign(verified, 200, wire.body_hash(b"ok"), NOW, answer)
    got = {k.decode(): v.decode() for k, v in answer + signature.headers()}
    assert got[wire.RESP_HEADERS] == "content-type,x-app"
    learned: list[bool] = []
    check = check_response(
        peer.host_key, request, 200, got, _lines(got), lambda: learned.append(True)
    )
    check.feed(b"ok")
    check.finish()
    assert learned == [True]
    assert check.verified_headers == [("content-type", "text/plain"), ("x-app", "1")]
    stripped = {k: v for k, v in got.items() if k != wire.RESP_HEADERS}
    check = check_response(peer.host_key, request, 200, stripped, _lines(stripped))
    check.feed(b"ok")
    with pytest.raises(VerificationError):
        check.finish()
    # A reference client (no opt-in) gets the reference's answer.
    plain = {k: v for k, v in peer.sign("GET", "/a", b"", int(NOW)).items()}
    verified = host.verify("GET", "/a", plain, wire.EMPTY_BODY_HASH, NOW)
    assert not verified.signs_answer_headers
    assert host.signer.sign(verified, 200, wire.body_hash(b"ok"), NOW, answer).header_names is None


def test_a_host_without_signed_headers_checks_the_original_string_only(tmp_path: Path) -> None:
    host = TrustHost.open(tmp_path / "data", signed_headers=False)
    peer = pair(host)
    headers = {"content-type": "application/json"}
    with_list = sign_request(
        peer.key, peer.session_id, "POST", "/a", b"", int(NOW), headers=headers
    )
    sent = {**headers, **with_list.headers()}
    assert reason(host, peer, sent, target="/a") == "bad_signature"  # the extra field
    # The list is ignored like any header: a request signed the original way passes.
    original = sign_request(peer.key, peer.session_id, "POST", "/a", b"", int(NOW))
    sent = {**original.headers(), wire.SIG_HEADERS: "content-type"}
    verified = host.verify("POST", "/a", sent, wire.EMPTY_BODY_HASH, NOW)
    assert verified.signed_headers is None
    assert not verified.signs_answer_headers
    answer = [(b"content-type", b"text/plain")]
    assert host.signer.sign(verified, 200, wire.body_hash(b""), NOW, answer).header_names is None

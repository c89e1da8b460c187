"""The host's rules for data-channel peers, against a real TrustHost and a paired peer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_relay.trust import TrustHost
from agent_relay.trust.admission import Reply
from agent_relay.trust.host import CLIENTS_PATH, ENROLLMENT_CODE_PATH
from agent_relay.trust.sessions import VerifiedRequest
from agent_relay.webrtc.host import (
    OFFER_PATH,
    ChannelAdmission,
    ChannelOwner,
    ChannelRefused,
    PeerTable,
    admit,
    begin,
)
from agent_relay.webrtc.limits import ChannelLimits

from .test_trust_core import NOW, call, pair


@pytest.fixture
def host(tmp_path: Path) -> TrustHost:
    return TrustHost.open(tmp_path / "data")


def refusal(outcome: VerifiedRequest | ChannelAdmission | Reply) -> tuple[int, str]:
    assert isinstance(outcome, Reply), outcome
    return outcome.status, json.loads(outcome.body)["reason"]


def _as_channel(headers: dict[str, str]) -> dict[str, list[str]]:
    # The reference sends the signature headers inside http_request.headers, any case.
    return {name.upper(): [value] for name, value in headers.items()}


def test_a_signed_channel_request_is_admitted_once(host: TrustHost) -> None:
    peer = pair(host)
    owner = ChannelOwner(peer.client_id, peer.session_id)
    headers = _as_channel(peer.sign("POST", "/api/x", b"body", int(NOW)))
    verified = admit(host, owner, "POST", "/api/x", headers, b"body", NOW)
    assert isinstance(verified, VerifiedRequest)
    assert verified.client_id == peer.client_id
    # same nonce again: a replay
    assert refusal(admit(host, owner, "POST", "/api/x", headers, b"body", NOW)) == (
        401,
        "replayed_nonce",
    )


def test_unsigned_forged_or_tampered_requests_are_refused(host: TrustHost) -> None:
    peer = pair(host)
    owner = ChannelOwner(peer.client_id, peer.session_id)
    for headers, body in [
        ({}, b""),
        (_as_channel(peer.sign("POST", "/api/x", b"body", int(NOW))), b"other"),
    ]:
        status, _ = refusal(admit(host, owner, "POST", "/api/x", headers, body, NOW))
        assert status == 401


def test_a_request_signed_in_another_session_is_refused(host: TrustHost) -> None:
    peer = pair(host)
    other = pair(host)
    owner = ChannelOwner(peer.client_id, peer.session_id)
    headers = _as_channel(other.sign("GET", "/api/x", b"", int(NOW)))
    assert refusal(admit(host, owner, "GET", "/api/x", headers, b"", NOW)) == (
        403,
        "wrong_session",
    )


@pytest.mark.parametrize("path", [ENROLLMENT_CODE_PATH, CLIENTS_PATH, OFFER_PATH])
def test_pairing_routes_are_not_served_over_a_channel(host: TrustHost, path: str) -> None:
    peer = pair(host)
    owner = ChannelOwner(peer.client_id, peer.session_id)
    headers = _as_channel(peer.sign("POST", path, b"", int(NOW)))
    assert refusal(admit(host, owner, "POST", path, headers, b"", NOW)) == (
        403,
        "not_over_channel",
    )


def test_peer_bounds_replacement_idle_and_revocation(host: TrustHost) -> None:
    table = PeerTable(ChannelLimits(max_peers_per_client=2, max_peers=3, idle_timeout=10))
    a, b = pair(host), pair(host)
    owner_a = ChannelOwner(a.client_id, a.session_id)
    owner_b = ChannelOwner(b.client_id, b.session_id)
    closed: list[str] = []
    table.add(owner_a, "o1", lambda: closed.append("a1"), NOW, host)
    table.add(owner_a, "o1", lambda: closed.append("a1'"), NOW, host)  # replaces a1
    assert closed == ["a1"]
    table.add(owner_a, "o2", lambda: closed.append("a2"), NOW, host)
    with pytest.raises(ChannelRefused, match="for this client"):
        table.add(owner_a, "o3", lambda: None, NOW, host)
    idle = table.add(owner_b, "o1", lambda: closed.append("b1"), NOW, host)
    with pytest.raises(ChannelRefused, match="on this host"):
        table.add(ChannelOwner("c", "s"), "o1", lambda: None, NOW)
    # Revoking a closes both of its peers at once, and only those.
    status, _, _ = call(host, "DELETE", f"{CLIENTS_PATH}/{a.client_id}", relayed=False)
    assert status == 200
    assert sorted(closed) == ["a1", "a1'", "a2"]
    assert len(table) == 1
    table.touch(idle, NOW + 5)
    assert table.sweep(NOW + 14) == []
    assert table.sweep(NOW + 16) == [idle]
    assert closed[-1] == "b1"
    assert len(table) == 0


def test_a_streamed_body_is_checked_when_it_ends_and_kept_until_passed_on(
    host: TrustHost,
) -> None:
    """The upload extension's admission: fed piece by piece, verified at the end (body
    hash included), the nonce spent only then; the body held for the local server."""
    peer = pair(host)
    owner = ChannelOwner(peer.client_id, peer.session_id)
    body = b"0123456789" * 10_000
    headers = _as_channel(peer.sign("PUT", "/api/x", body, int(NOW)))
    started = begin(host, owner, "PUT", "/api/x", headers, NOW)
    assert isinstance(started, ChannelAdmission)
    try:
        for at in range(0, len(body), 32_768):
            assert started.feed(body[at : at + 32_768]) is None
        verified = started.finish(NOW)
        assert isinstance(verified, VerifiedRequest)
        assert b"".join(started.body.chunks()) == body
    finally:
        started.close()
    # The same signature with another body (or a cut one) is refused at the end.
    other = _as_channel(peer.sign("PUT", "/api/x", body, int(NOW)))
    started = begin(host, owner, "PUT", "/api/x", other, NOW)
    assert isinstance(started, ChannelAdmission)
    try:
        assert started.feed(body[:-1]) is None
        assert refusal(started.finish(NOW)) == (401, "bad_signature")
    finally:
        started.close()


def test_a_streamed_body_is_refused_from_its_head_before_any_body(host: TrustHost) -> None:
    peer = pair(host)
    owner = ChannelOwner(peer.client_id, peer.session_id)
    assert refusal(begin(host, owner, "POST", ENROLLMENT_CODE_PATH, {}, NOW)) == (
        403,
        "not_over_channel",
    )
    assert refusal(begin(host, owner, "POST", "/api/x", {}, NOW))[0] == 401
    stale = _as_channel(peer.sign("POST", "/api/x", b"x", int(NOW) - 3600))
    assert refusal(begin(host, owner, "POST", "/api/x", stale, NOW))[0] == 401

"""Pairing codes a person reads off a screen: no look-alike characters in the ones this
host makes, yet any A-Z0-9 code is accepted (a reference client's, or one made elsewhere)."""

from __future__ import annotations

from pathlib import Path

from agent_relay.trust import TrustHost
from agent_relay.trust.host import FINISH_PATH, START_PATH
from agent_relay.trust.store import EnrollmentCode
from tests.support.trustpeer import Pairing, Peer

from .test_trust_core import NOW, call


def test_issued_codes_have_no_look_alikes(tmp_path: Path) -> None:
    host = TrustHost.open(tmp_path / "data")
    seen: set[str] = set()
    for _ in range(300):
        seen |= set(host.issue_code(NOW).code)
    assert not seen & set("0O1I")
    assert len(seen) == 32  # the whole alphabet turns up: no character lost by mistake


def test_a_code_with_look_alikes_still_pairs(tmp_path: Path) -> None:
    host = TrustHost.open(tmp_path / "data")
    host.codes.save(EnrollmentCode("O0I1Z9", NOW + 300))
    pairing = Pairing("o0i1z9")
    status, answer, _ = call(host, "POST", START_PATH, pairing.start_body())
    assert status == 200, answer
    peer = Peer()
    status, answer, _ = call(host, "POST", FINISH_PATH, peer.finish_body(pairing, answer["data"]))
    assert status == 200, answer
    assert [c.client_id for c in host.list_clients()] == [peer.client_id]
    assert host.last_seen(peer.client_id) == NOW

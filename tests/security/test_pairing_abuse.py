"""Issue 11 item 7 (the host's part): a junk pairing start through the relay must not
burn the owner's code, and a newcomer must not take over a paired client's id."""

from __future__ import annotations

from pathlib import Path

from agent_relay.trust import TrustHost, wire
from agent_relay.trust.host import FINISH_PATH, START_PATH
from tests.support.trustpeer import Pairing, Peer

from ..unit.test_trust_core import NOW, call, pair


def test_a_well_sized_junk_spake2_message_does_not_burn_the_code(tmp_path: Path) -> None:
    host = TrustHost.open(tmp_path / "data")
    code = host.issue_code(NOW).code
    junk = {"client_message_b64": wire.b64encode(b"A" + b"\xff" * 32)}  # not a curve point
    status, answer, _ = call(host, "POST", START_PATH, junk)
    assert (status, answer["reason"]) == (400, "bad_request")
    current = host.current_code(NOW)
    assert current is not None
    assert current.code == code


def test_a_newcomer_cannot_take_an_existing_client_id(tmp_path: Path) -> None:
    host = TrustHost.open(tmp_path / "data")
    first = pair(host)
    [paired] = host.list_clients()
    code = host.issue_code(NOW).code
    pairing = Pairing(code)
    status, answer, _ = call(host, "POST", START_PATH, pairing.start_body())
    assert status == 200, answer
    impostor = Peer(client_id=first.client_id)
    status, answer, _ = call(
        host, "POST", FINISH_PATH, impostor.finish_body(pairing, answer["data"])
    )
    assert status == 409, answer
    assert answer["reason"] == "client_id_taken"
    [still] = host.list_clients()
    assert still.public_key_b64 == paired.public_key_b64

"""Pairing interop: the client's SPAKE2 messages, keys and key-confirmation proofs agree
with an independent implementation written from the maths (spake2.mjs, on @noble/curves
under Node), in both roles, and with the `spake2` package's defaults (M, N, encoding).
Needs tests/spake2js/build.sh (scripts/test.sh runs it)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from spake2 import SPAKE2_A, SPAKE2_B
from spake2.parameters.ed25519 import ParamsEd25519

from agent_relay.client import PairingError
from agent_relay.client.pairing import ClientPairing
from agent_relay.trust import wire

HERE = Path(__file__).parent
# docs/protocol.md section 7 gives the first and last bytes; the full points, as the package
# computes them from the seeds "M" and "N".
M_HEX = "15cfd18e385952982b6a8f8c7854963b58e34388c8e6dae891db756481a02312"
N_HEX = "f04f2e7eb734b2a8f8b472eaf9c3c632576ac64aea650b496a8a20ff00e583c3"


class NodeSpake2:
    """The independent implementation, one JSON request and answer per line."""

    def __init__(self) -> None:
        assert (HERE / "node_modules" / "@noble" / "curves").is_dir(), (
            "run tests/spake2js/build.sh first (it installs @noble/curves)"
        )
        self.process = subprocess.Popen(
            ["node", str(HERE / "spake2.mjs")],
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
        assert line, "the node SPAKE2 process ended"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def node() -> Iterator[NodeSpake2]:
    peer = NodeSpake2()
    yield peer
    peer.close()


def fixed(entropy: bytes) -> Callable[[int], bytes]:
    def entropy_f(count: int) -> bytes:
        assert count == len(entropy)
        return entropy

    return entropy_f


ENTROPIES = [hashlib.sha512(bytes([i])).digest() for i in range(3)]
CODES = ["AB12CD", "000000", "ZZZZZZ"]


def test_constants_are_the_package_defaults_and_the_specs(node: NodeSpake2) -> None:
    constants = node("constants")
    assert constants["M"] == M_HEX == ParamsEd25519.M.to_bytes().hex()
    assert constants["N"] == N_HEX == ParamsEd25519.N.to_bytes().hex()
    assert M_HEX.startswith("15cfd18e")
    assert M_HEX.endswith("a02312")
    assert N_HEX.startswith("f04f2e7e")
    assert N_HEX.endswith("e583c3")
    assert int(constants["w_empty"], 16) == ParamsEd25519.group.password_to_scalar(b"")


@pytest.mark.parametrize(("code", "entropy"), list(zip(CODES, ENTROPIES, strict=True)))
def test_client_message_is_byte_for_byte_the_independent_one(
    node: NodeSpake2, code: str, entropy: bytes
) -> None:
    client = ClientPairing(code, Ed25519PrivateKey.generate(), "c", entropy=fixed(entropy))
    theirs = node("start", side="A", password=code, entropy_hex=entropy.hex())
    assert client.client_message.hex() == theirs["message_hex"]
    assert len(client.client_message) == 33
    assert client.client_message[:1] == b"A"


@pytest.mark.parametrize(("code", "entropy"), list(zip(CODES, ENTROPIES, strict=True)))
def test_host_side_message_and_keys_agree_both_ways(
    node: NodeSpake2, code: str, entropy: bytes
) -> None:
    pw = code.encode()
    ids = {"idA": wire.SPAKE2_CLIENT_IDENTITY, "idB": wire.SPAKE2_SERVER_IDENTITY}
    # Side B, both implementations, same entropy: same message.
    ours_b = SPAKE2_B(pw, entropy_f=fixed(entropy), **ids)
    message_b = ours_b.start()
    theirs_b = node("start", side="B", password=code, entropy_hex=entropy.hex())
    assert message_b.hex() == theirs_b["message_hex"]
    # The package's A against the independent B, and the independent A against the
    # package's B: each pair derives one key.
    ours_a = SPAKE2_A(pw, **ids)
    message_a = ours_a.start()
    key_ours_a = ours_a.finish(bytes.fromhex(theirs_b["message_hex"]))
    key_theirs_b = node("finish", id=theirs_b["id"], peer_message_hex=message_a.hex())["key_hex"]
    assert key_ours_a.hex() == key_theirs_b
    theirs_a = node("start", side="A", password=code)
    key_ours_b = ours_b.finish(bytes.fromhex(theirs_a["message_hex"]))
    key_theirs_a = node("finish", id=theirs_a["id"], peer_message_hex=message_b.hex())["key_hex"]
    assert key_ours_b.hex() == key_theirs_a


def test_wrong_password_gives_different_keys(node: NodeSpake2) -> None:
    ours_a = SPAKE2_A(b"AB12CD", idA=wire.SPAKE2_CLIENT_IDENTITY, idB=wire.SPAKE2_SERVER_IDENTITY)
    message_a = ours_a.start()
    theirs_b = node("start", side="B", password="AB12CE")  # noqa: S106 - a test code
    key = ours_a.finish(bytes.fromhex(theirs_b["message_hex"]))
    other = node("finish", id=theirs_b["id"], peer_message_hex=message_a.hex())
    assert key.hex() != other["key_hex"]


def test_proofs_agree(node: NodeSpake2) -> None:
    key = hashlib.sha256(b"shared").digest()
    enrollment = str(uuid.uuid4())
    client_public = bytes(range(32))
    server_public = bytes(range(32, 64))
    theirs = node(
        "proofs",
        key_hex=key.hex(),
        enrollment_id=enrollment,
        client_public_hex=client_public.hex(),
        server_public_hex=server_public.hex(),
    )
    ck = wire.confirmation_key(key)
    assert ck.hex() == theirs["ck_hex"]
    assert wire.client_proof(ck, enrollment, client_public).hex() == theirs["client_proof_hex"]
    assert (
        wire.server_proof(ck, enrollment, client_public, server_public).hex()
        == theirs["server_proof_hex"]
    )


def test_our_client_pairs_with_an_independent_host(node: NodeSpake2) -> None:
    key = Ed25519PrivateKey.generate()
    client = ClientPairing("  k9x2pq ", key, str(uuid.uuid4()))
    started = node("host_start", code="K9X2PQ", **client.start_request())
    assert "error" not in started
    finish = client.finish_request(started, client_name="test")
    finished = node("host_finish", **finish)
    assert "error" not in finished, finished  # the host accepted our client proof
    paired = client.check_finish(finished)  # and we accepted its server proof
    assert paired.server_public_key == wire.b64decode(finished["server_public_key_b64"])


def test_a_wrong_code_fails_on_both_sides(node: NodeSpake2) -> None:
    client = ClientPairing("K9X2PQ", Ed25519PrivateKey.generate(), str(uuid.uuid4()))
    started = node("host_start", code="K9X2PR", **client.start_request())
    finish = client.finish_request(started, client_name="test")
    assert node("host_finish", **finish) == {"error": "bad client proof"}
    # A host that skipped the check still cannot produce a proof we accept: forge one
    # from the key it derived, which is not ours.
    forged = node(
        "proofs",
        key_hex=hashlib.sha256(b"not the key").hexdigest(),
        enrollment_id=started["enrollment_id"],
        client_public_hex=client.client_public_key.hex(),
        server_public_hex=bytes(32).hex(),
    )
    with pytest.raises(PairingError, match="proof is wrong"):
        client.check_finish(
            {
                "signing_session_id": str(uuid.uuid4()),
                "server_public_key_b64": wire.b64encode(bytes(32)),
                "server_proof_b64": wire.b64encode(bytes.fromhex(forged["server_proof_hex"])),
            }
        )


def test_independent_client_pairs_with_the_package_host(node: NodeSpake2) -> None:
    """The other role: a client built on the independent code against a host built on
    the spake2 package (as agent_relay.trust is), proofs via wire.py."""
    theirs_a = node("start", side="A", password="Q1W2E3")  # noqa: S106 - a test code
    host = SPAKE2_B(b"Q1W2E3", idA=wire.SPAKE2_CLIENT_IDENTITY, idB=wire.SPAKE2_SERVER_IDENTITY)
    host_message = host.start()
    host_key = host.finish(bytes.fromhex(theirs_a["message_hex"]))
    client_key = node("finish", id=theirs_a["id"], peer_message_hex=host_message.hex())["key_hex"]
    assert client_key == host_key.hex()
    enrollment = str(uuid.uuid4())
    theirs = node(
        "proofs",
        key_hex=client_key,
        enrollment_id=enrollment,
        client_public_hex=bytes(32).hex(),
        server_public_hex=bytes(32).hex(),
    )
    ck = wire.confirmation_key(host_key)
    assert wire.client_proof(ck, enrollment, bytes(32)).hex() == theirs["client_proof_hex"]

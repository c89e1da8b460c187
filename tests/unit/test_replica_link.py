"""The replica link's proof (relay/link.py) and presence notices (store/presence.py)."""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_relay.relay.auth import JwtSecret
from agent_relay.relay.errors import RelayError
from agent_relay.relay.link import PROOF_WINDOW, check_proof, link_key, link_proof, proof_header
from agent_relay.store.presence import PresenceChange, parse_change

SECRET = JwtSecret(b"k" * 32)
KEY = link_key(SECRET)
A, B = uuid.uuid4(), uuid.uuid4()


def test_the_link_key_is_derived_not_the_secret() -> None:
    assert len(KEY) == 32
    assert SECRET.key != KEY
    assert link_key(SECRET) == KEY  # every replica derives the same one
    assert link_key(JwtSecret(b"j" * 32)) != KEY


def test_a_fresh_proof_for_this_replica_is_accepted() -> None:
    assert check_proof(KEY, B, proof_header(KEY, A, B).encode()) == A


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no proof"),
        (b"", "malformed"),
        (b"v2 a b c d", "malformed"),
        (f"v1 {A} {B} soon deadbeef".encode(), "malformed"),
        (proof_header(b"x" * 32, A, B).encode(), "bad proof"),
        (proof_header(SECRET.key, A, B).encode(), "bad proof"),
        (proof_header(KEY, A, A).encode(), "another replica"),
    ],
)
def test_other_proofs_are_refused(header: bytes | None, reason: str) -> None:
    with pytest.raises(RelayError) as refused:
        check_proof(KEY, B, header)
    assert refused.value.status == 403
    assert reason in refused.value.message


def test_a_stale_proof_is_refused() -> None:
    at = int(time.time() - PROOF_WINDOW - 5)
    header = f"v1 {A} {B} {at} {link_proof(KEY, A, B, at)}".encode()
    with pytest.raises(RelayError, match="stale"):
        check_proof(KEY, B, header)


@given(st.binary(max_size=300))
def test_garbage_is_a_403_never_a_crash(header: bytes) -> None:
    with pytest.raises(RelayError) as refused:
        check_proof(KEY, B, header)
    assert refused.value.status == 403


def test_presence_notices_parse() -> None:
    host = uuid.uuid4()
    assert parse_change(f"{host} {A} 7") == PresenceChange(host, A, 7)
    assert parse_change(f"{host} - 8") == PresenceChange(host, None, 8)
    for bad in ("", "x y z", f"{host} {A}", f"{host} {A} seven", f"{host} {A} 1 extra"):
        assert parse_change(bad) is None

"""The host key proof of a connect (hostproof.py): round trip, and any header values a
peer sends give a clear HostProofError or a verified key, never another exception."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agent_relay.hostproof import (
    KEY_HEADER,
    MAX_SKEW,
    PROOF_HEADER,
    HostProofError,
    connect_proof,
    verify_connect_proof,
)

KEY = Ed25519PrivateKey.generate()
NOW = 1_800_000_000.0
TOKEN = "a-bearer-token"  # noqa: S105 (a test value)


def headers(**kw: object) -> dict[str, str]:
    return connect_proof(KEY, machine_id="m", token=TOKEN, now=float(kw.get("now", NOW)))  # type: ignore[arg-type]


def verify(h: Mapping[str, str | None], **kw: str) -> object:
    return verify_connect_proof(
        h.get(KEY_HEADER),
        h.get(PROOF_HEADER),
        machine_id=kw.get("machine_id", "m"),
        token=kw.get("token", TOKEN),
        now=NOW,
    )


def test_round_trip_and_bindings() -> None:
    assert verify({}) is None  # no proof at all: the reference host
    assert verify(headers()) is not None
    assert verify(headers(now=NOW - MAX_SKEW)) is not None
    for bad in (
        {"token": "other"},
        {"machine_id": "other"},
    ):
        with pytest.raises(HostProofError, match="does not verify"):
            verify(headers(), **bad)
    with pytest.raises(HostProofError, match="off the relay's clock"):
        verify(headers(now=NOW + MAX_SKEW + 1))
    other = connect_proof(Ed25519PrivateKey.generate(), machine_id="m", token=TOKEN, now=NOW)
    with pytest.raises(HostProofError, match="does not verify"):
        verify({KEY_HEADER: headers()[KEY_HEADER], PROOF_HEADER: other[PROOF_HEADER]})


@given(st.one_of(st.none(), st.text(max_size=120)), st.one_of(st.none(), st.text(max_size=200)))
def test_any_header_values_are_refused_cleanly(key: str | None, proof: str | None) -> None:
    with contextlib.suppress(HostProofError):
        verify({KEY_HEADER: key, PROOF_HEADER: proof})


@given(st.integers(min_value=0, max_value=95), st.integers(min_value=1, max_value=255))
def test_a_changed_byte_never_verifies(position: int, mask: int) -> None:
    """Any byte of the signature or of the key changed: refused (base64 text may have
    several spellings of the same bytes, so the bytes are changed, not the text)."""
    real = headers()
    version, timestamp, signature = real[PROOF_HEADER].split(".")
    raw = bytearray(base64.b64decode(signature) + base64.b64decode(real[KEY_HEADER]))
    raw[position] ^= mask
    changed = {
        PROOF_HEADER: f"{version}.{timestamp}.{base64.b64encode(raw[:64]).decode()}",
        KEY_HEADER: base64.b64encode(raw[64:]).decode(),
    }
    with pytest.raises(HostProofError):
        verify(changed)

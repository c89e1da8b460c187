"""The relay's own HS256 codec, checked differentially against PyJWT (a test-only
dependency): for any token, both accept or refuse it for the same reason, and accepted
payloads are equal. Tokens are built from parts that are often, not always, valid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay.relay import hs256
from agent_relay.relay.auth import AuthError, AuthFailure, JwtSecret, decode_token, mint_token

KEY = bytes(range(32))
SECRET = JwtSecret(KEY)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def reference_decode(token: str) -> AuthFailure | dict[str, Any]:
    """How the relay decided with PyJWT, before it had its own codec (the same shape
    check first)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", token):
        return AuthFailure.MALFORMED_TOKEN
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return AuthFailure.MALFORMED_TOKEN
    if header.get("alg") != "HS256":
        return AuthFailure.UNSUPPORTED_ALGORITHM
    try:
        return jwt.decode(
            token,
            KEY,
            algorithms=["HS256"],
            audience="access",
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["aud", "sub", "session_id", "iat", "exp"],
            },
        )
    except jwt.InvalidSignatureError:
        return AuthFailure.BAD_SIGNATURE
    except jwt.InvalidAudienceError:
        return AuthFailure.WRONG_AUDIENCE
    except jwt.MissingRequiredClaimError as exc:
        return AuthFailure.WRONG_AUDIENCE if exc.claim == "aud" else AuthFailure.BAD_CLAIMS
    except jwt.DecodeError:
        return AuthFailure.MALFORMED_TOKEN
    except jwt.PyJWTError:
        return AuthFailure.BAD_CLAIMS


def ours(token: str) -> AuthFailure | None:
    try:
        decode_token(SECRET, token, now=None)
    except AuthError as exc:
        return exc.failure
    return None


json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
claim_values = {
    "sub": st.sampled_from(["7f1c2a44-5d1e-4f55-9f3c-0d5b7e3c1a01", "not-a-uuid"]) | json_values,
    "session_id": st.just("a3b9e0c1-2f4d-4c6e-8a1b-9d0e7f6a5b42") | json_values,
    "aud": st.sampled_from(["access", "other", ["x", "access"], ["x"], [1], []]) | json_values,
    "iat": st.integers(0, 2**33) | json_values,
    "exp": st.integers(0, 2**33) | json_values,
}


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for name, values in claim_values.items():
        if draw(st.integers(0, 9)):  # usually present
            payload[name] = draw(values)
    payload.update(draw(st.dictionaries(st.text(max_size=4), json_values, max_size=2)))
    return payload


@st.composite
def tokens(draw: st.DrawFn) -> str:
    header: Any = {"alg": draw(st.sampled_from(["HS256", "HS256", "none", "RS256", "hs256"]))}
    if draw(st.booleans()):
        header["typ"] = "JWT"
    if draw(st.integers(0, 9)) == 0:
        header["kid"] = draw(json_values)
    if draw(st.integers(0, 19)) == 0:
        header = draw(json_values)  # not an object, sometimes
    header_segment = b64url(json.dumps(header).encode())
    payload: Any = draw(payloads())
    if draw(st.integers(0, 19)) == 0:
        payload = draw(json_values)
    raw_payload = json.dumps(payload).encode()
    if draw(st.integers(0, 19)) == 0:
        raw_payload = draw(st.binary(max_size=12))  # not JSON, or not UTF-8
    payload_segment = b64url(raw_payload)
    signing_input = f"{header_segment}.{payload_segment}"
    key = KEY if draw(st.integers(0, 4)) else b"another key, 32 bytes long......"
    signature = b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
    token = f"{signing_input}.{signature}"
    if draw(st.integers(0, 9)) == 0:  # damage a character
        at = draw(st.integers(0, len(token) - 1))
        token = token[:at] + draw(st.sampled_from("A_-x.")) + token[at + 1 :]
    return token


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens())
def test_decisions_match_pyjwt(token: str) -> None:
    expected = reference_decode(token)
    got = ours(token)
    if isinstance(expected, AuthFailure):
        assert got == expected, token
    else:
        # PyJWT accepted it; what is left is the relay's own claim checks.
        assert got is None or got is AuthFailure.BAD_CLAIMS, token
        assert hs256.decode(token, KEY) == expected


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_encoding_matches_pyjwt(payload: dict[str, Any]) -> None:
    assert hs256.encode(payload, KEY) == jwt.encode(payload, KEY, algorithm="HS256")


def test_minted_tokens_are_read_by_pyjwt() -> None:
    from datetime import timedelta
    from uuid import uuid4

    user, session = uuid4(), uuid4()
    token = mint_token(SECRET, user, session, timedelta(hours=1))
    payload = jwt.decode(token, KEY, algorithms=["HS256"], audience="access")
    assert payload["sub"] == str(user)
    assert payload["session_id"] == str(session)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "ä.b.c",
        "####.e30.",
        "e.e30.",
        "W10.e30.",
        "eyJhbGciOiJIUzI1NiJ9.e.",
        "eyJhbGciOiJIUzI1NiJ9.e30.x",
    ],
)
def test_malformed_tokens_are_format_errors(token: str) -> None:
    with pytest.raises(hs256.TokenFormatError):
        hs256.decode(token, KEY)


def test_a_wrong_key_is_a_signature_mismatch() -> None:
    token = hs256.encode({"a": 1}, KEY)
    with pytest.raises(hs256.SignatureMismatch):
        hs256.decode(token, b"k" * 32)
    assert hs256.decode(token, KEY) == {"a": 1}

"""JWT authentication: the secret, every token check, the auth session checks, the cache,
and fuzzing (whatever the token, the only possible failure is AuthError)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import string
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_relay.relay.auth import (
    LEEWAY_SECONDS,
    MAX_IDLE,
    SECRET_ENV,
    Authenticator,
    AuthError,
    AuthFailure,
    Identity,
    JwtSecret,
    SecretError,
    auth_session_failure,
    bearer_token,
    decode_token,
    mint_token,
    session_id_of_token,
)
from agent_relay.store import AuthSessionRecord, StoreUnavailable

SECRET = JwtSecret(bytes(range(32)))
NOW = 2_000_000_000.0
USER = UUID("7f1c2a44-5d1e-4f55-9f3c-0d5b7e3c1a01")
SESSION = UUID("a3b9e0c1-2f4d-4c6e-8a1b-9d0e7f6a5b42")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": str(USER),
        "session_id": str(SESSION),
        "aud": "access",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 3600,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not ...}


def signed(payload: dict[str, Any], key: bytes = SECRET.key, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(signature),
        ]
    )


def record(**overrides: Any) -> AuthSessionRecord:
    created = datetime.fromtimestamp(NOW, UTC) - timedelta(days=1)
    base = AuthSessionRecord(
        id=SESSION, user_id=USER, created_at=created, last_used_at=None, revoked_at=None
    )
    return replace(base, **overrides)


class FakeSessions:
    """An AuthSessionSource over a dict, counting lookups."""

    def __init__(self, *records: AuthSessionRecord) -> None:
        self.rows = {r.id: r for r in records}
        self.lookups = 0
        self.fail: Exception | None = None

    async def get_auth_session(self, session_id: UUID) -> AuthSessionRecord | None:
        self.lookups += 1
        if self.fail is not None:
            raise self.fail
        return self.rows.get(session_id)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def reason_of(token: str, *, now: float = NOW) -> AuthFailure:
    with pytest.raises(AuthError) as caught:
        decode_token(SECRET, token, now=now)
    return caught.value.failure


# -- the secret -----------------------------------------------------------------------------


def test_secret_is_standard_base64_of_at_least_32_bytes() -> None:
    key = bytes(range(200, 248))
    encoded = base64.b64encode(key).decode()
    assert JwtSecret.from_base64(encoded).key == key
    assert JwtSecret.from_base64(f"  {encoded}\n").key == key  # a secret file's newline
    assert JwtSecret.from_environment({SECRET_ENV: encoded}).key == key
    generated = JwtSecret.generate()
    assert JwtSecret.from_base64(generated.to_base64()) == generated
    assert repr(JwtSecret(key)) == "JwtSecret(<48 bytes>)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("  \n", "is not set"),
        (base64.b64encode(b"x" * 31).decode(), "decodes to 31 bytes"),
        (base64.urlsafe_b64encode(b"\xfb\xff" * 24).decode(), "not valid standard base64"),
        (base64.b64encode(b"x" * 40).decode().rstrip("="), "not valid standard base64"),
        ("this is not base64 at all!!", "not valid standard base64"),
        ("ünïcødé" * 8, "not valid standard base64"),
    ],
)
def test_bad_secret_is_refused_with_a_clear_message(value: str | None, message: str) -> None:
    with pytest.raises(SecretError, match=message) as caught:
        JwtSecret.from_base64(value)
    assert SECRET_ENV in str(caught.value)
    if value and value.strip():
        assert value.strip() not in str(caught.value)  # never echo the secret


def test_secret_bytes_are_checked_too() -> None:
    with pytest.raises(SecretError):
        JwtSecret(b"short")
    with pytest.raises(SecretError):
        Authenticator(b"x" * 31, FakeSessions())


# -- the bearer header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer  t.t.t ", "t.t.t"),
        (b"BEARER x.y.z", "x.y.z"),
    ],
)
def test_bearer_token(header: str | bytes, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "abc"])
def test_missing_bearer_token(header: str | None) -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token(header)
    assert caught.value.failure is AuthFailure.MISSING_TOKEN


def test_non_ascii_header_bytes() -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token("Bearer tökén".encode())
    assert caught.value.failure is AuthFailure.MALFORMED_TOKEN


# -- the token --------------------------------------------------------------------------------


def test_good_token() -> None:
    token = mint_token(SECRET, USER, SESSION, timedelta(hours=1), now=NOW)
    decoded = decode_token(SECRET, token, now=NOW)
    assert (decoded.user_id, decoded.session_id) == (USER, SESSION)
    assert decoded.expires_at == NOW + 3600
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"sub", "session_id", "aud", "iat", "exp"}
    assert payload["aud"] == "access"


@pytest.mark.parametrize(
    "token",
    [
        signed(claims(), key=SECRET.key * 2, alg="HS512"),
        signed(claims(), key=SECRET.key * 2, alg="HS384"),
        unsigned({"alg": "none", "typ": "JWT"}, claims()),
        unsigned({"alg": "None"}, claims()),
        unsigned({"alg": "RS256"}, claims(), b"\x01" * 256),
        unsigned({"alg": "ES256"}, claims(), b"\x01" * 64),
        unsigned({"typ": "JWT"}, claims(), b"\x01" * 32),
        unsigned({"alg": ["HS256"]}, claims(), b"\x01" * 32),
    ],
)
def test_only_hs256_is_accepted(token: str) -> None:
    assert reason_of(token) is AuthFailure.UNSUPPORTED_ALGORITHM


def test_bad_signature() -> None:
    assert reason_of(signed(claims(), key=b"z" * 32)) is AuthFailure.BAD_SIGNATURE
    header, _, signature = signed(claims()).split(".")
    forged = b64url(json.dumps(claims(sub=str(uuid4()))).encode())
    assert reason_of(f"{header}.{forged}.{signature}") is AuthFailure.BAD_SIGNATURE
    assert reason_of(f"{header}.{forged}.") is AuthFailure.BAD_SIGNATURE


@pytest.mark.parametrize("aud", ["refresh", "", ["other"], "ACCESS", 1, ...])
def test_wrong_audience(aud: Any) -> None:
    assert reason_of(signed(claims(aud=aud))) is AuthFailure.WRONG_AUDIENCE


def test_audience_list_containing_access_is_accepted() -> None:
    # RFC 7519 (and the reference's jsonwebtoken crate): aud may be an array.
    assert decode_token(SECRET, signed(claims(aud=["access", "x"])), now=NOW).user_id == USER


@pytest.mark.parametrize(
    ("offset", "expired"),
    [
        (-LEEWAY_SECONDS - 1, True),
        (-LEEWAY_SECONDS - 3600, True),
        (-LEEWAY_SECONDS, False),  # exactly at the end of the leeway
        (-LEEWAY_SECONDS + 1, False),
        (0, False),
    ],
)
def test_expiry_with_leeway(offset: int, expired: bool) -> None:
    token = signed(claims(exp=int(NOW) + offset, iat=int(NOW) - 7200))
    if expired:
        assert reason_of(token) is AuthFailure.EXPIRED
    else:
        assert decode_token(SECRET, token, now=NOW).user_id == USER


@pytest.mark.parametrize(
    ("claim", "offset"), [("iat", LEEWAY_SECONDS + 1), ("nbf", LEEWAY_SECONDS + 1)]
)
def test_issued_in_the_future(claim: str, offset: int) -> None:
    assert reason_of(signed(claims(**{claim: int(NOW) + offset}))) is AuthFailure.NOT_YET_VALID
    ok = signed(claims(**{claim: int(NOW) + LEEWAY_SECONDS - 1}))
    assert decode_token(SECRET, ok, now=NOW).user_id == USER


@pytest.mark.parametrize(
    "bad",
    [
        {"sub": ...},
        {"sub": "alice"},
        {"sub": 12},
        {"sub": ""},
        {"sub": None},
        {"sub": str(USER) + "0"},
        {"session_id": ...},
        {"session_id": "not-a-uuid"},
        {"session_id": 7},
        {"session_id": [str(SESSION)]},
        {"iat": ...},
        {"exp": ...},
        {"exp": "2000000000"},
        {"exp": True},
        {"iat": -1},
        {"exp": 10**30},
        {"exp": 1e400},
        {"iat": float("nan")},
        {"nbf": "soon"},
    ],
)
def test_bad_claims(bad: dict[str, Any]) -> None:
    assert reason_of(signed(claims(**bad))) is AuthFailure.BAD_CLAIMS


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        "a..c",
        "é.b.c",
        "a b.c.d",
        "x" * 9000 + ".a.b",
        "bm90IGpzb24.bm90IGpzb24.c2ln",  # not JSON
        b64url(b"[1,2]") + "." + b64url(b"{}") + ".c2ln",  # header not an object
    ],
)
def test_malformed_tokens(token: str) -> None:
    assert reason_of(token) is AuthFailure.MALFORMED_TOKEN


def test_payload_that_is_not_an_object() -> None:
    header = b64url(json.dumps({"alg": "HS256"}).encode())
    body = b64url(b"[1]")
    signature = hmac.new(SECRET.key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    assert reason_of(f"{header}.{body}.{b64url(signature)}") is AuthFailure.MALFORMED_TOKEN


def test_mint_token_checks_its_arguments() -> None:
    for ttl in (timedelta(0), timedelta(seconds=-1), timedelta(days=3651)):
        with pytest.raises(ValueError, match="ttl"):
            mint_token(SECRET, USER, SESSION, ttl)
    with pytest.raises(TypeError):
        mint_token(SECRET, str(USER), SESSION, timedelta(hours=1))  # type: ignore[arg-type]


def test_session_id_of_an_expired_token() -> None:
    token = mint_token(SECRET, USER, SESSION, timedelta(seconds=1), now=NOW - 86400)
    assert session_id_of_token(SECRET, token) == SESSION
    with pytest.raises(AuthError):
        session_id_of_token(JwtSecret(b"q" * 32), token)


# -- the auth session -------------------------------------------------------------------------


def test_auth_session_checks_in_the_reference_order() -> None:
    now = datetime.fromtimestamp(NOW, UTC)
    assert auth_session_failure(record(), USER, now) is None
    assert auth_session_failure(None, USER, now) is AuthFailure.UNKNOWN_SESSION
    revoked = record(revoked_at=now, user_id=uuid4())
    assert auth_session_failure(revoked, USER, now) is AuthFailure.SESSION_REVOKED
    idle = record(created_at=now - MAX_IDLE - timedelta(seconds=1), user_id=uuid4())
    assert auth_session_failure(idle, USER, now) is AuthFailure.SESSION_IDLE
    assert auth_session_failure(record(user_id=uuid4()), USER, now) is (
        AuthFailure.SESSION_USER_MISMATCH
    )
    # Idle counts from the last use when there is one, else from creation.
    at_limit = record(created_at=now - MAX_IDLE)
    assert auth_session_failure(at_limit, USER, now) is None
    used = record(created_at=now - 2 * MAX_IDLE, last_used_at=now - timedelta(days=364))
    assert auth_session_failure(used, USER, now) is None
    stale = record(created_at=now - 2 * MAX_IDLE, last_used_at=now - timedelta(days=366))
    assert auth_session_failure(stale, USER, now) is AuthFailure.SESSION_IDLE


async def test_authenticator_end_to_end() -> None:
    sessions = FakeSessions(record())
    auth = Authenticator(SECRET, sessions, clock=Clock())
    token = mint_token(SECRET, USER, SESSION, timedelta(hours=1), now=NOW)
    identity = await auth.authenticate(f"Bearer {token}".encode())
    assert identity == Identity(USER, SESSION, datetime.fromtimestamp(NOW + 3600, UTC))
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(None)
    assert caught.value.failure is AuthFailure.MISSING_TOKEN
    assert sessions.lookups == 1  # a bad token never reaches the database


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (None, AuthFailure.UNKNOWN_SESSION),
        (record(revoked_at=datetime.fromtimestamp(NOW, UTC)), AuthFailure.SESSION_REVOKED),
        (
            record(created_at=datetime.fromtimestamp(NOW, UTC) - timedelta(days=366)),
            AuthFailure.SESSION_IDLE,
        ),
        (record(user_id=uuid4()), AuthFailure.SESSION_USER_MISMATCH),
    ],
)
async def test_authenticator_session_failures(
    row: AuthSessionRecord | None, reason: AuthFailure
) -> None:
    sessions = FakeSessions(*([row] if row is not None else []))
    auth = Authenticator(SECRET, sessions, clock=Clock())
    with pytest.raises(AuthError) as caught:
        await auth.verify(mint_token(SECRET, USER, SESSION, timedelta(hours=1), now=NOW))
    assert caught.value.failure is reason
    assert str(caught.value) == reason.value


async def test_database_trouble_is_not_an_auth_failure() -> None:
    sessions = FakeSessions(record())
    sessions.fail = StoreUnavailable("database down")
    auth = Authenticator(SECRET, sessions, clock=Clock())
    with pytest.raises(StoreUnavailable):
        await auth.verify(mint_token(SECRET, USER, SESSION, timedelta(hours=1), now=NOW))


async def test_cache_of_auth_sessions() -> None:
    sessions = FakeSessions(record())
    clock = Clock()
    auth = Authenticator(SECRET, sessions, cache_ttl=10, clock=clock)
    token = mint_token(SECRET, USER, SESSION, timedelta(hours=1), now=NOW)
    await auth.verify(token)
    await auth.verify(token)
    assert sessions.lookups == 1
    # Checks still run on a cached row: a token for another user is refused.
    other = mint_token(SECRET, uuid4(), SESSION, timedelta(hours=1), now=NOW)
    with pytest.raises(AuthError):
        await auth.verify(other)
    # That failure dropped the entry; a revoke in this process calls invalidate.
    await auth.verify(token)
    assert sessions.lookups == 2
    sessions.rows[SESSION] = record(revoked_at=datetime.fromtimestamp(NOW, UTC))
    auth.invalidate(SESSION)
    with pytest.raises(AuthError):
        await auth.verify(token)
    # Revoked rows are not cached; a restored one is cached again, until the TTL passes.
    sessions.rows[SESSION] = record()
    await auth.verify(token)
    lookups = sessions.lookups
    clock.now += 10.5
    await auth.verify(token)
    assert sessions.lookups == lookups + 1


async def test_cache_is_bounded_and_off_by_default() -> None:
    rows = [record(id=uuid4()) for _ in range(5)]
    sessions = FakeSessions(*rows)
    auth = Authenticator(SECRET, sessions, cache_ttl=60, cache_size=3, clock=Clock())
    for row in rows:
        await auth.verify(mint_token(SECRET, USER, row.id, timedelta(hours=1), now=NOW))
    assert len(auth._cache) == 3
    auth.clear()
    assert not auth._cache
    uncached = Authenticator(SECRET, sessions, clock=Clock())
    token = mint_token(SECRET, USER, rows[0].id, timedelta(hours=1), now=NOW)
    before = sessions.lookups
    await uncached.verify(token)
    await uncached.verify(token)
    assert sessions.lookups == before + 2


def test_authenticator_arguments() -> None:
    with pytest.raises(ValueError, match="cache_ttl"):
        Authenticator(SECRET, FakeSessions(), cache_ttl=-1)
    with pytest.raises(TypeError):
        Authenticator("secret", FakeSessions())  # type: ignore[arg-type]


# -- fuzzing ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
claim_names = st.sampled_from(
    ["sub", "session_id", "aud", "iat", "exp", "nbf", "alg", "typ", "kid", "b64", "crit", "x"]
)
plausible = st.one_of(
    st.sampled_from([str(USER), str(SESSION), "access", int(NOW), int(NOW) + 30, "HS256"]),
    json_values,
)
objects = st.dictionaries(claim_names, plausible, max_size=7)


def run_authenticate(header: str | bytes | None) -> None:
    auth = Authenticator(SECRET, FakeSessions(record()), clock=Clock())
    # Either an identity or an AuthError; anything else fails the test.
    with contextlib.suppress(AuthError):
        assert isinstance(asyncio.run(auth.authenticate(header)), Identity)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), st.none()))
def test_fuzz_arbitrary_headers(header: str | bytes | None) -> None:
    run_authenticate(header)
    if isinstance(header, str):
        run_authenticate(f"Bearer {header}")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=objects, payload=objects, sign=st.sampled_from(["right", "wrong", "raw"]))
def test_fuzz_structured_tokens(header: dict[str, Any], payload: dict[str, Any], sign: str) -> None:
    """Tokens that get past the shape check: random JSON header and claims, signed with
    the right key, a wrong one, or not at all."""
    try:
        head = b64url(json.dumps(header).encode())
        body = b64url(json.dumps(payload).encode())
    except (ValueError, OverflowError):
        return
    key = SECRET.key if sign == "right" else b"w" * 32
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{b64url(signature) if sign != 'raw' else ''}"
    run_authenticate(f"Bearer {token}")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=200))
def test_fuzz_token_alphabet(token: str) -> None:
    with contextlib.suppress(AuthError):
        decode_token(SECRET, token, now=time.time())

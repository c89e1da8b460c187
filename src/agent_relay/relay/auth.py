"""Bearer JWT authentication, as the reference relay does it (docs/protocol.md section 3).

A token is HS256-signed with the base64-decoded ``VIBEKANBAN_REMOTE_JWT_SECRET``; ``aud``
is ``access``; ``sub`` (user) and ``session_id`` (auth session) are UUIDs; ``iat`` and
``exp`` are checked with 60 s of leeway. Then the ``auth_sessions`` row must exist, not
be revoked, not be idle more than 365 days, and belong to ``sub``.

The checks themselves are pure functions (``decode_token``, ``auth_session_failure``):
time comes in as an argument. ``Authenticator`` adds the one database lookup and an
optional short-lived cache of auth sessions. Every failure is an ``AuthError`` with a
short reason (the HTTP layer answers 401); a database that does not answer raises the
store's ``StoreUnavailable`` instead (503), never an AuthError.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from ..errors import AgentRelayError, HttpError
from ..store.records import AuthSessionRecord
from . import hs256

if TYPE_CHECKING:
    from ..store import Store

SECRET_ENV = "VIBEKANBAN_REMOTE_JWT_SECRET"  # noqa: S105 (a variable name)
MIN_SECRET_BYTES = 32
ALGORITHM = "HS256"
AUDIENCE = "access"
LEEWAY_SECONDS = 60
MAX_IDLE = timedelta(days=365)
MAX_TTL = timedelta(days=3650)
# Real tokens are a few hundred bytes; anything far beyond is not worth parsing.
MAX_TOKEN_LENGTH = 8192
# Largest Unix time a datetime can hold (9999-12-31T23:59:59Z).
_MAX_TIMESTAMP = 253_402_300_799
_REQUIRED_CLAIMS = ("aud", "sub", "session_id", "iat", "exp")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class SecretError(AgentRelayError, ValueError):
    """The JWT secret is missing, not standard base64, or shorter than 32 bytes. The
    message names the variable and the fix, never the value."""


class AuthFailure(enum.StrEnum):
    # Reasons, not secrets (ruff's S105 sees "token" in the names).
    MISSING_TOKEN = "missing bearer token"  # noqa: S105
    MALFORMED_TOKEN = "malformed token"  # noqa: S105
    UNSUPPORTED_ALGORITHM = "unsupported algorithm"
    BAD_SIGNATURE = "bad signature"
    WRONG_AUDIENCE = "wrong audience"
    BAD_CLAIMS = "bad claims"
    EXPIRED = "token expired"
    NOT_YET_VALID = "token not yet valid"
    UNKNOWN_SESSION = "unknown session"
    SESSION_REVOKED = "session revoked"
    SESSION_IDLE = "session idle"
    SESSION_USER_MISMATCH = "session user mismatch"


class AuthError(HttpError):
    """Authentication failed: 401. ``failure`` is short and safe to show the client."""

    def __init__(self, failure: AuthFailure) -> None:
        super().__init__(401, failure.value)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class JwtSecret:
    """The HS256 key. Its repr never shows the bytes."""

    key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) < MIN_SECRET_BYTES:
            raise SecretError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")

    def __repr__(self) -> str:
        return f"JwtSecret(<{len(self.key)} bytes>)"

    @classmethod
    def from_base64(cls, value: str | None, *, name: str = SECRET_ENV) -> JwtSecret:
        """Parses standard base64 (with padding; surrounding whitespace, as a secret
        file's trailing newline, is ignored)."""
        hint = "for example: openssl rand -base64 48"
        if value is None or not isinstance(value, str) or not value.strip():
            raise SecretError(
                f"{name} is not set: it must be at least {MIN_SECRET_BYTES} random bytes "
                f"in standard base64 ({hint})"
            )
        try:
            key = base64.b64decode(value.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise SecretError(
                f"{name} is not valid standard base64 (A-Z a-z 0-9 + / with = padding; {hint})"
            ) from None
        if len(key) < MIN_SECRET_BYTES:
            raise SecretError(
                f"{name} decodes to {len(key)} bytes; it must decode to at least "
                f"{MIN_SECRET_BYTES} ({hint})"
            )
        return cls(key)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> JwtSecret:
        return cls.from_base64(environ.get(SECRET_ENV))

    @classmethod
    def generate(cls) -> JwtSecret:
        """48 fresh random bytes (for a stand-alone relay's first start)."""
        return cls(secrets.token_bytes(48))

    def to_base64(self) -> str:
        return base64.b64encode(self.key).decode("ascii")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: UUID
    session_id: UUID
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for."""

    user_id: UUID
    auth_session_id: UUID
    token_expires_at: datetime


def bearer_token(authorization: str | bytes | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value (scheme in any
    case; raw header bytes are accepted as they come off the wire)."""
    if isinstance(authorization, bytes):
        try:
            authorization = authorization.decode("ascii")
        except UnicodeDecodeError:
            raise AuthError(AuthFailure.MALFORMED_TOKEN) from None
    if not authorization or not isinstance(authorization, str):
        raise AuthError(AuthFailure.MISSING_TOKEN)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError(AuthFailure.MISSING_TOKEN)
    return token


def decode_token(secret: JwtSecret, token: str, *, now: float | None) -> TokenClaims:
    """Checks signature, algorithm, audience and claims; with ``now`` (Unix seconds)
    also ``exp``/``iat``/``nbf`` with the leeway. ``now=None`` skips the time checks
    (to revoke the session of an expired token). Raises AuthError only."""
    if not isinstance(token, str) or not token:
        raise AuthError(AuthFailure.MISSING_TOKEN)
    if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_SHAPE.fullmatch(token):
        raise AuthError(AuthFailure.MALFORMED_TOKEN)
    try:
        header = hs256.unverified_header(token)
    except hs256.TokenFormatError:
        raise AuthError(AuthFailure.MALFORMED_TOKEN) from None
    # Decided before any key is used: "none", RS256 (key confusion) and others never
    # get near verification.
    if header.get("alg") != ALGORITHM:
        raise AuthError(AuthFailure.UNSUPPORTED_ALGORITHM)
    try:
        payload = hs256.decode(token, secret.key)
    except hs256.SignatureMismatch:
        raise AuthError(AuthFailure.BAD_SIGNATURE) from None
    except hs256.TokenFormatError:
        raise AuthError(AuthFailure.MALFORMED_TOKEN) from None
    _check_required_claims(payload)
    claims = TokenClaims(
        user_id=_uuid_claim(payload, "sub"),
        session_id=_uuid_claim(payload, "session_id"),
        issued_at=_time_claim(payload, "iat"),
        expires_at=_time_claim(payload, "exp"),
    )
    if now is not None:
        if now > claims.expires_at + LEEWAY_SECONDS:
            raise AuthError(AuthFailure.EXPIRED)
        if claims.issued_at > now + LEEWAY_SECONDS:
            raise AuthError(AuthFailure.NOT_YET_VALID)
        if "nbf" in payload and _time_claim(payload, "nbf") > now + LEEWAY_SECONDS:
            raise AuthError(AuthFailure.NOT_YET_VALID)
    return claims


def _check_required_claims(payload: Mapping[str, Any]) -> None:
    """Present (not null): ``aud`` first, then the others; ``aud`` names the access
    audience (a string, or a list of strings holding it)."""
    for name in _REQUIRED_CLAIMS:
        if payload.get(name) is None:
            raise AuthError(AuthFailure.WRONG_AUDIENCE if name == "aud" else AuthFailure.BAD_CLAIMS)
    audience = payload["aud"]
    audiences = [audience] if isinstance(audience, str) else audience
    if (
        not isinstance(audiences, list)
        or not all(isinstance(a, str) for a in audiences)
        or AUDIENCE not in audiences
    ):
        raise AuthError(AuthFailure.WRONG_AUDIENCE)
    if not isinstance(payload["sub"], str):
        raise AuthError(AuthFailure.BAD_CLAIMS)


def _uuid_claim(payload: Mapping[str, Any], name: str) -> UUID:
    value = payload.get(name)
    if not isinstance(value, str) or len(value) > 64:
        raise AuthError(AuthFailure.BAD_CLAIMS)
    try:
        return UUID(value)
    except ValueError:
        raise AuthError(AuthFailure.BAD_CLAIMS) from None


def _time_claim(payload: Mapping[str, Any], name: str) -> float:
    value = payload.get(name)
    # bool is an int in Python, not a NumericDate in JSON.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuthError(AuthFailure.BAD_CLAIMS)
    if not (math.isfinite(value) and 0 <= value <= _MAX_TIMESTAMP):
        raise AuthError(AuthFailure.BAD_CLAIMS)
    return float(value)


def auth_session_failure(
    record: AuthSessionRecord | None, user_id: UUID, now: datetime
) -> AuthFailure | None:
    """The reference's auth session checks, in its order; None when the session is
    good. Used for tokens and, by the proxy, for a browser session's auth session."""
    if record is None:
        return AuthFailure.UNKNOWN_SESSION
    if record.revoked_at is not None:
        return AuthFailure.SESSION_REVOKED
    if now - record.idle_since > MAX_IDLE:
        return AuthFailure.SESSION_IDLE
    if record.user_id != user_id:
        return AuthFailure.SESSION_USER_MISMATCH
    return None


def mint_token(
    secret: JwtSecret,
    user_id: UUID,
    session_id: UUID,
    ttl: timedelta,
    *,
    now: float | None = None,
) -> str:
    """A token as the remote API mints it: HS256, ``aud`` access, ``sub``,
    ``session_id``, ``iat``, ``exp`` = iat + ttl."""
    if not isinstance(user_id, UUID) or not isinstance(session_id, UUID):
        raise TypeError("user_id and session_id must be UUIDs")
    if not isinstance(ttl, timedelta) or not timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be a timedelta within (0, {MAX_TTL.days} days]")
    issued_at = int(time.time() if now is None else now)
    payload = {
        "sub": str(user_id),
        "session_id": str(session_id),
        "aud": AUDIENCE,
        "iat": issued_at,
        "exp": issued_at + math.ceil(ttl.total_seconds()),
    }
    return hs256.encode(payload, secret.key)


def session_id_of_token(secret: JwtSecret, token: str) -> UUID:
    """The auth session of a correctly signed token, expired or not (``tokens revoke``)."""
    return decode_token(secret, token, now=None).session_id


class AuthSessionSource(Protocol):
    """Where auth sessions come from; ``Store`` is one."""

    async def get_auth_session(self, session_id: UUID) -> AuthSessionRecord | None: ...


class Authenticator:
    """Verifies bearer tokens: pure checks, then one auth session lookup.

    ``cache_ttl`` > 0 keeps good (unrevoked) auth sessions that long, so repeated
    connects and session creations skip the database; the checks still run on every
    call against the cached row. A revoke done in this process should call
    ``invalidate``; one done elsewhere (the remote API, the admin CLI) is seen within
    ``cache_ttl``. The default, 0, caches nothing.

    ``refusal_ttl`` > 0 remembers refused logins (unknown or revoked) that long, so a
    revoked host retrying its connect costs no database lookup per attempt.
    """

    def __init__(
        self,
        secret: JwtSecret | bytes,
        sessions: AuthSessionSource,
        *,
        cache_ttl: float = 0.0,
        cache_size: int = 10_000,
        refusal_ttl: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secret, bytes):
            secret = JwtSecret(secret)  # raises SecretError when shorter than 32 bytes
        if not isinstance(secret, JwtSecret):
            raise TypeError("secret must be a JwtSecret or bytes")
        if not 0 <= refusal_ttl <= 300:
            raise ValueError("refusal_ttl must be within 0..300 s")
        if not 0 <= cache_ttl <= 300 or cache_size < 1:
            raise ValueError("cache_ttl must be within 0..300 s and cache_size positive")
        self._secret = secret
        self._sessions = sessions
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[UUID, tuple[float, AuthSessionRecord]] = OrderedDict()
        self._refusal_ttl = refusal_ttl
        self._refused: OrderedDict[UUID, tuple[float, AuthSessionRecord | None]] = OrderedDict()

    async def authenticate(self, authorization: str | bytes | None) -> Identity:
        """Verifies the token of an ``Authorization`` header value."""
        return await self.verify(bearer_token(authorization))

    async def verify(self, token: str) -> Identity:
        now = self._clock()
        claims = decode_token(self._secret, token, now=now)
        record = await self._auth_session(claims.session_id, now)
        failure = auth_session_failure(record, claims.user_id, datetime.fromtimestamp(now, UTC))
        if failure is not None:
            self.invalidate(claims.session_id)
            raise AuthError(failure)
        return Identity(
            user_id=claims.user_id,
            auth_session_id=claims.session_id,
            token_expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
        )

    def invalidate(self, *auth_session_ids: UUID) -> None:
        """Forget cached auth sessions (call after revoking them)."""
        for session_id in auth_session_ids:
            self._cache.pop(session_id, None)

    def clear(self) -> None:
        self._cache.clear()

    async def _auth_session(self, session_id: UUID, now: float) -> AuthSessionRecord | None:
        refused = self._refused.get(session_id)
        if refused is not None:
            if refused[0] > now:
                return refused[1]
            del self._refused[session_id]
        record = await self._load_auth_session(session_id, now)
        if self._refusal_ttl > 0 and (record is None or record.revoked_at is not None):
            self._refused[session_id] = (now + self._refusal_ttl, record)
            self._refused.move_to_end(session_id)
            while len(self._refused) > self._cache_size:
                self._refused.popitem(last=False)
        return record

    async def _load_auth_session(self, session_id: UUID, now: float) -> AuthSessionRecord | None:
        if self._cache_ttl <= 0:
            return await self._sessions.get_auth_session(session_id)
        cached = self._cache.get(session_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self._sessions.get_auth_session(session_id)
        if record is not None and record.revoked_at is None:
            self._cache[session_id] = (now + self._cache_ttl, record)
            self._cache.move_to_end(session_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.pop(session_id, None)
        return record


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    auth_session_id: UUID
    expires_at: datetime


async def issue_token(
    store: Store,
    secret: JwtSecret,
    user_id: UUID,
    ttl: timedelta,
    *,
    now: float | None = None,
) -> IssuedToken:
    """Stand-alone ``tokens issue``: a new auth session for the user and its JWT.
    Raises the store's NotFound (no such user) or SharedModeRefused."""
    if not isinstance(ttl, timedelta) or not timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be a timedelta within (0, {MAX_TTL.days} days]")
    session = await store.issue_auth_session(user_id)
    issued_at = int(time.time() if now is None else now)
    token = mint_token(secret, user_id, session.id, ttl, now=issued_at)
    expires_at = datetime.fromtimestamp(issued_at + math.ceil(ttl.total_seconds()), UTC)
    return IssuedToken(token=token, auth_session_id=session.id, expires_at=expires_at)

"""Signing sessions and the check of a signed request (sans-IO: time is passed in).

A session binds a paired client's public key to a random id; it lives 1 h at most and
ends after 15 min unused. Each session remembers the nonces of the last 2 min, so a
request replayed within the clock window is refused; one older than that fails the
clock check instead.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import wire
from .errors import TrustError, client_revoked, unauthorized
from .keys import verifies
from .limits import TrustLimits


@dataclass(eq=False)
class SigningSession:
    session_id: str
    client_id: str
    public_key: Ed25519PublicKey
    created_at: float
    last_used: float
    nonces: OrderedDict[str, float] = field(default_factory=OrderedDict)


class NonceWindow:
    """Nonces seen in the last ``window`` seconds, at most ``cap`` of them."""

    def __init__(self, window: float, cap: int) -> None:
        self.window = window
        self.cap = cap
        self.seen: OrderedDict[str, float] = OrderedDict()

    def check(self, nonce: str, now: float) -> None:
        self._expire(now)
        if nonce in self.seen:
            raise unauthorized("replayed_nonce", "this nonce was already used")
        if len(self.seen) >= self.cap:
            raise TrustError(429, "rate_limited", "too many requests; slow down", retry_after=1)

    def record(self, nonce: str, now: float) -> None:
        self.seen[nonce] = now

    def _expire(self, now: float) -> None:
        while self.seen:
            oldest, at = next(iter(self.seen.items()))
            if now - at <= self.window:
                break
            del self.seen[oldest]


class SessionTable:
    def __init__(self, limits: TrustLimits) -> None:
        self.limits = limits
        self._sessions: OrderedDict[str, tuple[SigningSession, NonceWindow]] = OrderedDict()
        # Ended by a revocation: answered ``client_revoked`` rather than ``unknown_session``.
        self._revoked: OrderedDict[str, None] = OrderedDict()

    def create(self, client_id: str, public_key: Ed25519PublicKey, now: float) -> SigningSession:
        self._expire(now)
        mine = [s for s, _ in self._sessions.values() if s.client_id == client_id]
        for old in mine[: max(0, len(mine) - self.limits.max_sessions_per_client + 1)]:
            del self._sessions[old.session_id]
        while len(self._sessions) >= self.limits.max_sessions:
            self._sessions.popitem(last=False)
        session = SigningSession(str(uuid.uuid4()), client_id, public_key, now, now)
        window = NonceWindow(self.limits.nonce_window, self.limits.max_nonces_per_session)
        self._sessions[session.session_id] = (session, window)
        return session

    def lookup(self, session_id: str, now: float) -> tuple[SigningSession, NonceWindow]:
        entry = self._sessions.get(session_id)
        if entry is None:
            if session_id in self._revoked:
                raise client_revoked()
            raise unauthorized("unknown_session", "unknown signing session; refresh it")
        session = entry[0]
        if now - session.created_at > self.limits.session_ttl:
            del self._sessions[session_id]
            raise unauthorized("session_expired", "the signing session expired; refresh it")
        if now - session.last_used > self.limits.session_idle:
            del self._sessions[session_id]
            raise unauthorized("session_expired", "the signing session was idle too long")
        return entry

    def revoke_client(self, client_id: str) -> list[str]:
        ended = [sid for sid, (s, _) in self._sessions.items() if s.client_id == client_id]
        for sid in ended:
            del self._sessions[sid]
            self._revoked[sid] = None
        while len(self._revoked) > self.limits.max_sessions:
            self._revoked.popitem(last=False)
        return ended

    def last_used_by(self, client_id: str) -> float | None:
        used = [s.last_used for s, _ in self._sessions.values() if s.client_id == client_id]
        return max(used, default=None)

    def client_ids(self) -> set[str]:
        return {s.client_id for s, _ in self._sessions.values()}

    def _expire(self, now: float) -> None:
        limits = self.limits
        dead = [
            sid
            for sid, (s, _) in self._sessions.items()
            if now - s.created_at > limits.session_ttl or now - s.last_used > limits.session_idle
        ]
        for sid in dead:
            del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    session_id: str
    client_id: str
    nonce: str
    path_and_query: str  # as signed (query signature parameters removed)
    accepts_signed_stream: bool
    # The headers the client signed (x-vk-sig-headers), or None for a request without
    # that list (a reference client): then it is forwarded as today and its answer's
    # headers are not signed.
    signed_headers: tuple[str, ...] | None = None
    # Sign the answer's headers (RESP_HEADERS): the request signed its own, or its client
    # said it reads them (ACCEPT_SIGNED_HEADERS); never on a host without signed headers.
    signs_answer_headers: bool = False


@dataclass(frozen=True, slots=True)
class Prechecked:
    """What :meth:`RequestVerifier.precheck` read from a request's head, so that
    :meth:`RequestVerifier.verify` need not parse it again (it checks the session and the
    nonce again: other requests may have changed them while the body came in)."""

    session: SigningSession
    nonces: NonceWindow
    path_and_query: str
    session_id: str
    nonce: str
    ts: str
    signature: bytes
    signed_headers: tuple[str, ...] | None


def signature_in_query(target: str) -> tuple[str, dict[str, str]]:
    """The canonical ``path_and_query`` and the signature fields found in the query. When
    some are there, they are removed and the rest is re-encoded as form data."""
    path, sep, query = target.partition("?")
    if not sep:
        return target, {}
    pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=1000)
    fields = {k: v for k, v in pairs if k in wire.REQUEST_SIGNATURE_FIELDS}
    if not fields:
        return target, {}
    rest = [(k, v) for k, v in pairs if k not in wire.REQUEST_SIGNATURE_FIELDS]
    # The WHATWG serializer, as the reference host and browsers' URLSearchParams: it
    # differs from urllib's urlencode on '~' and '*'.
    return wire.signed_ws_path(path, rest), fields


class RequestVerifier:
    """Checks one relayed request; raises TrustError (always with a clean reason)."""

    def __init__(self, sessions: SessionTable, *, signed_headers: bool = True) -> None:
        self.sessions = sessions
        self.limits = sessions.limits
        # False: the reference host's checks (x-vk-sig-headers is ignored like any other
        # header, the signed string never has the headers field).
        self.signed_headers = signed_headers

    def precheck(
        self, target: str, headers: Mapping[str, str], now: float, *, allow_query: bool = False
    ) -> Prechecked:
        """Everything that needs no body: the four values present and well formed, the
        timestamp, a live session, an unused nonce, a readable header list. A request
        that fails here is refused before its body is read."""
        return self._fields(target, headers, now, allow_query)

    def verify(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        h_body: str,
        now: float,
        *,
        allow_query: bool = False,
        lines: Sequence[tuple[str, str]] = (),
        prechecked: Prechecked | None = None,
    ) -> VerifiedRequest:
        """``lines``: every header line (names lower case), for the signed headers.
        ``prechecked``: what :meth:`precheck` returned for this very request (same
        ``target``, ``headers`` and ``now``)."""
        if prechecked is None:
            f = self._fields(target, headers, now, allow_query)
        else:
            f = prechecked
            session, nonces = self.sessions.lookup(f.session_id, now)
            if session is not f.session:
                raise unauthorized("unknown_session", "unknown signing session; refresh it")
            nonces.check(f.nonce, now)
        h_headers = None
        if f.signed_headers is not None:
            h_headers = wire.headers_hash(f.signed_headers, lines)
        message = wire.request_message(
            f.ts, method, f.path_and_query, f.session_id, f.nonce, h_body, h_headers
        )
        if not verifies(f.session.public_key, f.signature, message):
            raise unauthorized("bad_signature", "the request signature does not verify")
        f.nonces.record(f.nonce, now)
        f.session.last_used = now
        return VerifiedRequest(
            session_id=f.session_id,
            client_id=f.session.client_id,
            nonce=f.nonce,
            path_and_query=f.path_and_query,
            accepts_signed_stream=headers.get(wire.ACCEPT_STREAM_SIGNING, "").strip() == "1",
            signed_headers=f.signed_headers,
            signs_answer_headers=self.signed_headers
            and (
                f.signed_headers is not None
                or headers.get(wire.ACCEPT_SIGNED_HEADERS, "").strip() == "1"
            ),
        )

    def _fields(
        self, target: str, headers: Mapping[str, str], now: float, allow_query: bool
    ) -> Prechecked:
        fields = {name: headers[name] for name in wire.REQUEST_SIGNATURE_FIELDS if name in headers}
        path_and_query = target
        if not fields and allow_query:
            try:
                path_and_query, fields = signature_in_query(target)
            except ValueError:
                raise unauthorized("bad_signature", "unreadable query") from None
        if not fields:
            raise unauthorized("missing_signature", "this relayed request must be signed")
        if len(fields) != len(wire.REQUEST_SIGNATURE_FIELDS):
            missing = [n for n in wire.REQUEST_SIGNATURE_FIELDS if n not in fields]
            raise unauthorized("partial_signature", f"missing {', '.join(missing)}")
        session_id = fields[wire.SIG_SESSION]
        nonce = fields[wire.SIG_NONCE]
        ts_text = fields[wire.SIG_TS]
        if not (ts_text.isascii() and ts_text.lstrip("-").isdigit()) or len(ts_text) > 20:
            raise unauthorized("bad_signature", f"{wire.SIG_TS} is not a unix time")
        if abs(now - int(ts_text)) > self.limits.clock_window:
            raise unauthorized("clock_skew", "the request's timestamp is too far from the host's")
        session, nonces = self.sessions.lookup(session_id, now)
        if not nonce or len(nonce) > self.limits.max_nonce_length:
            raise unauthorized("bad_signature", "bad nonce")
        try:
            signature = wire.b64decode(fields[wire.SIG_SIGNATURE], size=wire.SIGNATURE_SIZE)
        except ValueError:
            raise unauthorized("bad_signature", "the signature is not 64 bytes of base64") from None
        nonces.check(nonce, now)
        signed_headers = None
        listed = headers.get(wire.SIG_HEADERS) if self.signed_headers else None
        if listed is not None:
            try:
                signed_headers = wire.parse_header_list(listed)
            except ValueError as exc:
                raise unauthorized("bad_signature", f"{wire.SIG_HEADERS}: {exc}") from None
        return Prechecked(
            session, nonces, path_and_query, session_id, nonce, ts_text, signature, signed_headers
        )

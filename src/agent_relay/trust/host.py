"""The host side of the trust layer, without any I/O of its own but its small files:
the pairing routes under ``/api/relay-auth/server/``, the session table, request checks
and response signing. The two adapters (``asgi.protect`` and the connector's forwarder)
feed it requests and apply its answers; time is always passed in."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import wire
from .errors import TrustError, client_revoked, success_body, unauthorized
from .frames import FrameCodec
from .keys import public_bytes, verifies
from .limits import TrustLimits
from .local import LOOPBACK_NAMES
from .ratelimit import KeyedRateLimiter
from .sessions import NonceWindow, Prechecked, RequestVerifier, SessionTable, VerifiedRequest
from .signing import ResponseSigner
from .store import EnrollmentCode, HostStorage, TrustedClient, open_host_storage

log = logging.getLogger(__name__)

API_PREFIX = "/api/relay-auth/server/"
ENROLLMENT_CODE_PATH = API_PREFIX + "enrollment-code"
START_PATH = API_PREFIX + "spake2/start"
FINISH_PATH = API_PREFIX + "spake2/finish"
REFRESH_PATH = API_PREFIX + "signing-session/refresh"
CLIENTS_PATH = API_PREFIX + "clients"
# Reachable through the relay without a request signature (they establish one).
UNSIGNED_PATHS = frozenset({START_PATH, FINISH_PATH, REFRESH_PATH})
# Codes this host makes leave out look-alikes (0/O, 1/I): 32 letters and digits, 30 bits.
# Any A-Z0-9 code (a reference client's, one typed from elsewhere) is still accepted.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
MAX_API_BODY = 64 * 1024
MAX_TEXT_FIELD = 256
SYNC_INTERVAL = 1.0  # how often the trusted-client store is checked for outside changes


@dataclass(frozen=True, slots=True)
class ApiReply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def error_reply(error: TrustError, now: float) -> ApiReply:
    body = error.body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if error.status == 401:
        headers.append((wire.HOST_TIME.encode(), str(int(now)).encode()))
    if error.retry_after is not None:
        headers.append((b"retry-after", str(error.retry_after).encode()))
    return ApiReply(error.status, body, headers)


def json_reply(status: int, body: bytes) -> ApiReply:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    return ApiReply(status, body, headers)


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX)


def relay_address(headers: Mapping[str, str]) -> str:
    """The rate-limit key of a relayed caller: the client address the relay forwarded,
    else one bucket for everything the relay sends."""
    forwarded = headers.get("x-forwarded-for", "")
    last = forwarded.rsplit(",", 1)[-1].strip()[:64]
    return f"relay:{last}" if last else "relay"


@dataclass(eq=False, slots=True)
class _Enrollment:
    shared_key: bytes
    expires_at: float
    address: str


class TrustHost:
    def __init__(
        self,
        storage: HostStorage,
        *,
        limits: TrustLimits | None = None,
        signed_headers: bool = True,
    ) -> None:
        """``signed_headers`` False: checks and signs as the reference host does (no
        x-vk-sig-headers, no x-vk-resp-headers), for compatibility tests."""
        self.limits = limits or TrustLimits()
        self.host_key = storage.host_key
        self.public_key_b64 = wire.b64encode(public_bytes(self.host_key))
        self.store = storage.clients
        self.codes = storage.codes
        self.sessions = SessionTable(self.limits)
        self.verifier = RequestVerifier(self.sessions, signed_headers=signed_headers)
        self.signer = ResponseSigner(self.host_key)
        # Host names (besides loopback) a local, not relayed, pairing-route call may be
        # addressed to (trust/local.py); protect(allowed_hosts=…) adds to them.
        self.local_hosts = LOOPBACK_NAMES
        self._enrollments: OrderedDict[str, _Enrollment] = OrderedDict()
        self._pair_limiter = KeyedRateLimiter(
            self.limits.pair_burst, self.limits.pair_refill, self.limits.max_tracked_addresses
        )
        self._refresh_limiter = KeyedRateLimiter(30, 2.0, self.limits.max_tracked_addresses)
        self._refresh_nonces = NonceWindow(self.limits.nonce_window, self.limits.max_refresh_nonces)
        self._clients: dict[str, TrustedClient] = {}
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._revoked_clients: OrderedDict[str, None] = OrderedDict()
        self._store_version: object = object()
        self._watchers: dict[str, dict[int, Callable[[], None]]] = {}
        self._next_watch = 0
        self._synced_at: float | None = None
        self.sync()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        limits: TrustLimits | None = None,
        trusted_keys_file: Path | None = None,
        signed_headers: bool = True,
    ) -> TrustHost:
        """A TrustHost kept in the files of ``data_dir`` (``open_host_storage``)."""
        storage = open_host_storage(data_dir, trusted_keys_file)
        return cls(storage, limits=limits, signed_headers=signed_headers)

    # ----------------------------------------------------------------- clients

    def sync(self) -> list[str]:
        """Reload the trusted clients if the store changed (the CLI may have written
        it); sessions of clients no longer trusted end. The ended session ids."""
        version = self.store.version()
        if version == self._store_version:
            return []
        self._store_version = version
        clients = {c.client_id: c for c in self.store.all()}
        keys: dict[str, Ed25519PublicKey] = {}
        for client in clients.values():
            try:
                raw = wire.b64decode(client.public_key_b64, size=32)
                keys[client.client_id] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError:
                log.warning("trusted client %s has an unreadable key; ignored", client.client_id)
        self._clients = clients
        self._keys = keys
        ended: list[str] = []
        for client_id in self.sessions.client_ids() - keys.keys():
            ended += self._end_client(client_id)
        return ended

    def maybe_sync(self, now: float) -> None:
        """:meth:`sync` at most once per :data:`SYNC_INTERVAL` of ``now`` (it asks the
        store, which may stat a file): what the adapters call per request."""
        last = self._synced_at
        if last is None or now - last >= SYNC_INTERVAL or now < last:
            self._synced_at = now
            self.sync()

    def list_clients(self) -> list[TrustedClient]:
        self.sync()
        return sorted(self._clients.values(), key=lambda c: (c.paired_at, c.client_id))

    def last_seen(self, client_id: str) -> float | None:
        """When this process last checked a request of the client (None: not since start)."""
        return self.sessions.last_used_by(client_id)

    def revoke(self, client_id: str) -> bool:
        """Forget a client: its sessions end and its signed WebSockets close now."""
        removed = self.store.remove(client_id)
        self.sync()
        self._end_client(client_id)
        if removed:
            log.info("trust: client %s revoked", client_id)
        return removed

    def _end_client(self, client_id: str) -> list[str]:
        self._revoked_clients[client_id] = None
        while len(self._revoked_clients) > self.limits.max_sessions:
            self._revoked_clients.popitem(last=False)
        ended = self.sessions.revoke_client(client_id)
        for session_id in ended:
            for close in list(self._watchers.pop(session_id, {}).values()):
                close()
        return ended

    def watch(self, session_id: str, on_revoke: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_revoke`` when the session's client is revoked; returns the undo."""
        self._next_watch += 1
        token = self._next_watch
        self._watchers.setdefault(session_id, {})[token] = on_revoke

        def unwatch() -> None:
            watchers = self._watchers.get(session_id)
            if watchers is not None:
                watchers.pop(token, None)
                if not watchers:
                    del self._watchers[session_id]

        return unwatch

    # ----------------------------------------------------------------- codes

    def issue_code(self, now: float) -> EnrollmentCode:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        issued = EnrollmentCode(code, now + self.limits.code_ttl)
        self.codes.save(issued)
        log.info("trust: new enrollment code issued (valid %d s)", int(self.limits.code_ttl))
        return issued

    def current_code(self, now: float) -> EnrollmentCode | None:
        return self.codes.load(now)

    # ----------------------------------------------------------------- requests

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
        verified = self.verifier.verify(
            method,
            target,
            headers,
            h_body,
            now,
            allow_query=allow_query,
            lines=lines,
            prechecked=prechecked,
        )
        if verified.client_id not in self._keys:
            self._end_client(verified.client_id)
            raise client_revoked()
        return verified

    def precheck(
        self, target: str, headers: Mapping[str, str], now: float, *, allow_query: bool = False
    ) -> Prechecked:
        """The checks of :meth:`verify` that need no body (RequestVerifier.precheck)."""
        return self.verifier.precheck(target, headers, now, allow_query=allow_query)

    def frame_codec(self, verified: VerifiedRequest) -> FrameCodec:
        key = self._keys[verified.client_id]
        return FrameCodec(
            verified.session_id,
            verified.nonce,
            self.host_key,
            key,
            max_message=self.limits.max_ws_message,
        )

    def handle_api(
        self, method: str, path: str, body: bytes, *, relayed: bool, address: str, now: float
    ) -> ApiReply:
        """Answer one ``/api/relay-auth/server/…`` request. A relayed one other than the
        three pairing steps must have passed :meth:`verify` already."""
        try:
            return json_reply(
                200, success_body(self._route(method, path, body, relayed, address, now))
            )
        except TrustError as exc:
            if exc.status == 400 and path in (START_PATH, FINISH_PATH):
                log.warning("trust: pairing step from %s refused: %s", address, exc.message)
            return error_reply(exc, now)

    def _route(
        self, method: str, path: str, body: bytes, relayed: bool, address: str, now: float
    ) -> Any:
        if len(body) > MAX_API_BODY:
            raise TrustError(413, "too_large", "request body too large")
        routes: dict[str, tuple[str, Callable[[], Any]]] = {
            ENROLLMENT_CODE_PATH: ("POST", lambda: self._new_code(relayed, address, now)),
            START_PATH: ("POST", lambda: self._start(_json(body), address, now)),
            FINISH_PATH: ("POST", lambda: self._finish(_json(body), address, now)),
            REFRESH_PATH: ("POST", lambda: self._refresh(_json(body), address, now)),
            CLIENTS_PATH: (
                "GET",
                lambda: {"clients": [c.public_info() for c in self.list_clients()]},
            ),
        }
        if path.startswith(CLIENTS_PATH + "/"):
            client_id = path.removeprefix(CLIENTS_PATH + "/")
            routes[path] = ("DELETE", lambda: self._delete_client(client_id))
        if path not in routes:
            raise TrustError(404, "not_found", f"no route {path}")
        allowed, handler = routes[path]
        if method != allowed:
            raise TrustError(405, "method_not_allowed", f"use {allowed}")
        return handler()

    def _new_code(self, relayed: bool, address: str, now: float) -> dict[str, Any]:
        if relayed:
            log.warning("trust: enrollment code requested through the relay (%s); refused", address)
            raise TrustError(403, "local_only", "enrollment codes are issued only locally")
        code = self.issue_code(now)
        return {"enrollment_code": code.code, "expires_at": int(code.expires_at)}

    def _limit(self, limiter: KeyedRateLimiter, address: str, what: str, now: float) -> None:
        wait = limiter.take(address, now)
        if wait is not None:
            log.warning("trust: %s from %s: rate limited (%d s)", what, address, wait)
            raise TrustError(
                429, "rate_limited", f"too many attempts; retry in {wait} s", retry_after=wait
            )

    def _start(self, body: dict[str, Any], address: str, now: float) -> dict[str, Any]:
        offered = body.get("enrollment_code")
        message_b64 = body.get("client_message_b64")
        if offered is not None and not isinstance(offered, str):
            raise TrustError(400, "bad_request", "enrollment_code must be a string")
        if not isinstance(message_b64, str):
            raise TrustError(400, "bad_request", "client_message_b64 is required")
        try:
            client_message = wire.b64decode(message_b64, size=33)
        except ValueError as exc:
            raise TrustError(400, "bad_request", f"client_message_b64: {exc}") from None
        if client_message[0] != ord("A"):
            raise TrustError(400, "bad_request", "client_message_b64 must be SPAKE2 side A")
        code = self.codes.load(now)
        if code is None:
            log.warning("trust: pairing start from %s: no current code", address)
            raise unauthorized("code_expired", "no enrollment code is active; make a new one")
        # Charged only when there is a code to use up: polling while none is active costs
        # the caller nothing, so it cannot drain a shared bucket ahead of the owner.
        self._limit(self._pair_limiter, address, "pairing start", now)
        # The message is checked first: a junk start (through the relay, from anyone) is
        # refused without using up the owner's code. A well-formed one burns it.
        # Imported on first use: a connector that is not pairing need not hold it.
        from spake2 import SPAKE2_B
        from spake2.spake2 import SPAKEError

        spake = SPAKE2_B(
            code.code.encode(),
            idA=wire.SPAKE2_CLIENT_IDENTITY,
            idB=wire.SPAKE2_SERVER_IDENTITY,
        )
        server_message = spake.start()
        try:
            shared_key = spake.finish(client_message)
        except (SPAKEError, ValueError, AssertionError):
            log.warning("trust: pairing start from %s: bad SPAKE2 message", address)
            raise TrustError(400, "bad_request", "not a valid SPAKE2 message") from None
        self.codes.burn()  # single use, whatever happens next
        if offered:
            given = wire.normalize_code(offered).encode()
            if not hmac.compare_digest(given, code.code.encode()):
                log.warning("trust: pairing start from %s: wrong code; code burned", address)
                raise unauthorized("bad_code", "wrong enrollment code; make a new one")
        enrollment_id = str(uuid.uuid4())
        self._expire_enrollments(now)
        while len(self._enrollments) >= self.limits.max_pending_enrollments:
            self._enrollments.popitem(last=False)
        self._enrollments[enrollment_id] = _Enrollment(
            shared_key, now + self.limits.enrollment_ttl, address
        )
        log.info("trust: pairing start from %s: enrollment %s", address, enrollment_id)
        return {
            "enrollment_id": enrollment_id,
            "server_message_b64": wire.b64encode(server_message),
        }

    def _expire_enrollments(self, now: float) -> None:
        for key in [k for k, e in self._enrollments.items() if e.expires_at <= now]:
            del self._enrollments[key]

    def _finish(self, body: dict[str, Any], address: str, now: float) -> dict[str, Any]:
        enrollment_id = body.get("enrollment_id")
        if not isinstance(enrollment_id, str) or not _is_uuid(enrollment_id):
            raise TrustError(400, "bad_request", "enrollment_id must be a uuid")
        enrollment = self._enrollments.pop(enrollment_id.lower(), None)
        if enrollment is None:
            log.warning("trust: pairing finish from %s: unknown enrollment", address)
            raise unauthorized("unknown_enrollment", "unknown or used enrollment; start again")
        if enrollment.expires_at <= now:
            log.warning("trust: pairing finish from %s: enrollment expired", address)
            raise unauthorized("code_expired", "the enrollment expired; start again")
        fields = {}
        for name in ("client_id", "client_name", "client_browser", "client_os", "client_device"):
            value = body.get(name, "")
            if not isinstance(value, str) or len(value) > MAX_TEXT_FIELD:
                raise TrustError(400, "bad_request", f"{name} must be a short string")
            fields[name] = value
        if not _is_uuid(fields["client_id"]):
            raise TrustError(400, "bad_request", "client_id must be a uuid")
        fields["client_id"] = str(uuid.UUID(fields["client_id"]))
        try:
            public_key = wire.b64decode(str(body.get("public_key_b64", "")), size=32)
            proof = wire.b64decode(str(body.get("client_proof_b64", "")), size=32)
        except ValueError as exc:
            raise TrustError(
                400, "bad_request", f"public_key_b64 or client_proof_b64: {exc}"
            ) from None
        ck = wire.confirmation_key(enrollment.shared_key)
        expected = wire.client_proof(ck, enrollment_id, public_key)
        if not hmac.compare_digest(proof, expected):
            log.warning("trust: pairing finish from %s: bad proof (wrong code?)", address)
            raise unauthorized("bad_proof", "key confirmation failed; make a new code")
        try:
            key = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError:
            raise TrustError(400, "bad_request", "not an Ed25519 public key") from None
        self.sync()
        if fields["client_id"] in self._keys:
            # Replacing a paired client's key would hand its identity to whoever knows one
            # code: a newcomer picks a fresh id (revoke the old client to reuse one).
            log.warning("trust: pairing finish from %s: client_id already paired", address)
            raise TrustError(409, "client_id_taken", "this client_id is already paired")
        client = TrustedClient(public_key_b64=wire.b64encode(public_key), paired_at=now, **fields)
        self.store.add(client)
        self.sync()
        self._revoked_clients.pop(client.client_id, None)
        session = self.sessions.create(client.client_id, key, now)
        log.info(
            "trust: pairing finish from %s: client %s (%s) paired",
            address,
            client.client_id,
            client.client_name,
        )
        host_public = public_bytes(self.host_key)
        return {
            "signing_session_id": session.session_id,
            "server_public_key_b64": self.public_key_b64,
            "server_proof_b64": wire.b64encode(
                wire.server_proof(ck, enrollment_id, public_key, host_public)
            ),
        }

    def _refresh(self, body: dict[str, Any], address: str, now: float) -> dict[str, Any]:
        self._limit(self._refresh_limiter, address, "session refresh", now)
        client_id = body.get("client_id")
        timestamp = body.get("timestamp")
        nonce = body.get("nonce")
        signature_b64 = body.get("signature_b64")
        if not isinstance(client_id, str) or not isinstance(signature_b64, str):
            raise TrustError(400, "bad_request", "client_id and signature_b64 are required")
        if not isinstance(nonce, str) or not 0 < len(nonce) <= self.limits.max_nonce_length:
            raise TrustError(400, "bad_request", "nonce must be 1 to 128 characters")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | str):
            raise TrustError(400, "bad_request", "timestamp must be unix seconds")
        ts_text = str(timestamp)
        if not ts_text.lstrip("-").isdigit() or not ts_text.isascii() or len(ts_text) > 20:
            raise TrustError(400, "bad_request", "timestamp must be unix seconds")
        if abs(now - int(ts_text)) > self.limits.clock_window:
            raise unauthorized("clock_skew", "the timestamp is too far from the host's clock")
        self.sync()
        key = self._keys.get(client_id)
        if key is None:
            if client_id in self._revoked_clients:
                raise client_revoked()
            raise unauthorized("unknown_client", "this client is not paired with the host")
        try:
            signature = wire.b64decode(signature_b64, size=wire.SIGNATURE_SIZE)
        except ValueError:
            raise unauthorized("bad_signature", "the signature is not 64 bytes of base64") from None
        self._refresh_nonces.check(nonce, now)
        if not verifies(key, signature, wire.refresh_message(ts_text, nonce, client_id)):
            log.warning("trust: session refresh from %s for %s: bad signature", address, client_id)
            raise unauthorized("bad_signature", "the refresh signature does not verify")
        self._refresh_nonces.record(nonce, now)
        session = self.sessions.create(client_id, key, now)
        log.info("trust: session refresh from %s: client %s", address, client_id)
        return {"signing_session_id": session.session_id}

    def _delete_client(self, client_id: str) -> dict[str, Any]:
        if not self.revoke(client_id):
            raise TrustError(404, "unknown_client", f"no trusted client {client_id}")
        return {"client_id": client_id, "revoked": True}


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise TrustError(400, "bad_request", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise TrustError(400, "bad_request", "the body must be a JSON object")
    return data


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, AttributeError):
        return False
    return len(text) == 36

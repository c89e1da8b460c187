"""RelayClient: reach a paired host through a relay, trusting only what the host signed.

The relay is used for two things only: a relay session (``POST /v1/relay/create/{host}``
with the relay token) and forwarding. Everything that matters is checked end to end
with the keys pairing left in the key store (see pairing.py, signing.py, frames.py).

Retries are chosen so a lying relay cannot get a request executed twice:
- a relay session that is gone is re-created and the *same* signed request is sent again
  (same nonce), so if the relay did deliver it the host refuses the copy as a replay;
- a host 401 leads to a new signing session and a freshly signed request only when the
  401 itself carries a valid host signature, or the method is safe to repeat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection

from ..baseurl import ws_url
from ..trust import wire
from .clock import HostClock
from .errors import (
    ClientError,
    HostRefusedError,
    PairingError,
    RelayRefusedError,
    VerificationError,
)
from .frames import MAX_ENVELOPE_SIZE, Frame, FrameSigner, FrameVerifier, close_payload
from .keystore import KeyStore, Pairing, normalize_relay_url
from .pairing import ClientPairing
from .signing import BodyCheck, SignedRequest, check_response, sign_refresh, sign_request

AUTH_PREFIX = "/api/relay-auth/server"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Host 401 reasons a new signing session can cure.
REFRESHABLE = frozenset({"clock_skew", "unknown_session", "session_expired"})
# Signing sessions end after 1 h, or 15 min unused: renew a little before.
SESSION_MAX_AGE = 55 * 60
SESSION_MAX_IDLE = 13 * 60
SAVE_USE_EVERY = 30.0
SMALL_ANSWER = 64 * 1024  # error and JSON answers we read whole before deciding


@dataclass(frozen=True)
class ClientLimits:
    max_body: int = 64 * 1024 * 1024  # a whole (non-streamed) body is held until checked
    connect_timeout: float = 15.0
    read_timeout: float | None = 300.0  # longest pause while reading an answer


class VerifiedResponse:
    """An answer whose signature checked out. ``iter_bytes`` yields only verified data:
    records of a streamed body as each checks out, a whole body once all of it has.
    ``headers`` holds only the headers the host signed (x-vk-resp-headers); whatever
    else arrived (the relay's own, or anything it added) is in ``unverified_headers``:
    show it if you must, never trust it."""

    def __init__(self, response: httpx.Response, check: BodyCheck, limits: ClientLimits) -> None:
        self._response = response
        self._check = check
        self._limits = limits
        self.status = response.status_code
        verified = check.verified_headers
        if verified is None:  # an answer to a request signed the reference way
            self.headers = httpx.Headers()
            self.unverified_headers = response.headers
        else:
            names = {k.lower() for k, _ in verified}
            self.headers = httpx.Headers(verified)
            self.unverified_headers = httpx.Headers(
                [(k, v) for k, v in _header_lines(response) if k not in names]
            )
        self.streamed = check.streamed
        self.received = 0  # bytes read so far, verified or not (for a progress display)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        held = bytearray()
        try:
            async for data in self._response.aiter_raw():
                self.received += len(data)
                if self._check.streamed:
                    for payload in self._check.feed(data):
                        yield payload
                else:
                    held += data
                    if len(held) > self._limits.max_body:
                        raise ClientError(
                            f"the answer is larger than {self._limits.max_body} bytes and "
                            "not streamed; raise the limit"
                        )
                    self._check.feed(data)
        except httpx.HTTPError as exc:
            raise ClientError(f"the relay connection failed while reading: {exc}") from None
        self._check.finish()
        if held:
            yield bytes(held)

    async def read(self, limit: int | None = None) -> bytes:
        limit = self._limits.max_body if limit is None else limit
        out = bytearray()
        async for chunk in self.iter_bytes():
            out += chunk
            if len(out) > limit:
                raise ClientError(f"the answer is larger than {limit} bytes")
        return bytes(out)

    async def json(self) -> Any:
        try:
            return json.loads(await self.read())
        except ValueError:
            raise ClientError("the host's answer is not JSON") from None


class RelayClient:
    def __init__(
        self,
        pairing: Pairing,
        *,
        token: str | None = None,
        store: KeyStore | None = None,
        limits: ClientLimits | None = None,
        clock: HostClock | None = None,
    ) -> None:
        self.pairing = pairing
        self.token = token
        self.store = store
        self.limits = limits or ClientLimits()
        if clock is None:
            clock = HostClock()
            clock.offset = pairing.clock_offset  # what an earlier run learned
        self.clock = clock
        self._http = _http_client(self.limits)
        self._saved_use = pairing.session_used_at
        self.relay_session_creations = 0
        self.refreshes = 0

    async def __aenter__(self) -> RelayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --------------------------------------------------------------- pairing

    @classmethod
    async def pair(
        cls,
        relay_url: str,
        host_id: str,
        code: str,
        *,
        token: str,
        store: KeyStore | None,
        client_name: str | None = None,
        limits: ClientLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Pairing:
        """Pair with the host through the relay; stores and returns the pairing."""
        relay_url = normalize_relay_url(relay_url)
        host_id = _check_uuid(host_id, "host id")
        key = Ed25519PrivateKey.generate()
        attempt = ClientPairing(code, key, str(uuid.uuid4()))
        limits = limits or ClientLimits()
        async with _http_client(limits) as http:
            relay_session = await _create_relay_session(http, relay_url, host_id, token)
            base = _proxy_base(relay_url, host_id, relay_session)
            started = await _auth_call(http, base, "spake2/start", attempt.start_request())
            finish = attempt.finish_request(
                started,
                client_name=client_name or f"agent-relay on {socket.gethostname()}",
                client_os=platform.system(),
                client_device=platform.machine(),
            )
            finished = await _auth_call(http, base, "spake2/finish", finish)
        paired = attempt.check_finish(finished)
        now = clock()
        pairing = Pairing(
            relay_url=relay_url,
            host_id=host_id,
            client_id=attempt.client_id,
            client_key=key,
            host_public_key=paired.server_public_key,
            signing_session_id=paired.signing_session_id,
            relay_session_id=relay_session,
            session_started_at=now,
            session_used_at=now,
        )
        if store is not None:
            store.save(pairing)
        # One signed read (the host's client list, a route every host has): its verified
        # answer says whether the host checks signed headers, so even the pairing's first
        # real request signs its own. Best effort: the pairing stands either way.
        with contextlib.suppress(ClientError):
            async with cls(pairing, token=token, store=store, limits=limits) as client:
                await client.request("GET", f"{AUTH_PREFIX}/clients")
                pairing = client.pairing
        return pairing

    # --------------------------------------------------------------- HTTP

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[VerifiedResponse, bytes]:
        """One signed exchange, the whole verified body read."""
        async with self.stream(method, path, body=body, headers=headers) as response:
            return response, await response.read()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[VerifiedResponse]:
        method = method.upper()
        path_and_query = _check_path(path)
        response, check = await self._exchange(method, path_and_query, body, dict(headers or {}))
        try:
            yield VerifiedResponse(response, check, self.limits)
        finally:
            await response.aclose()

    async def _exchange(
        self, method: str, path_and_query: str, body: bytes, headers: dict[str, str]
    ) -> tuple[httpx.Response, BodyCheck]:
        await self._renew_if_stale()
        refreshed = False
        headers = {"accept-encoding": "identity", **headers}
        while True:
            signed = self._sign(method, path_and_query, body, headers)
            response = await self._send_signed(method, signed, body, headers)
            if response.status_code != 401 or not _looks_like_host(response):
                return response, await self._check_head(signed, response)
            refusal = await self._read_refusal(signed, response)
            if refreshed or refusal.reason not in REFRESHABLE:
                raise refusal.error()
            if not refusal.verified and method not in SAFE_METHODS:
                raise HostRefusedError(
                    401,
                    refusal.reason,
                    f"{refusal.message} (not retried: the refusal carries no host signature, "
                    "so it may not come from the host; run the request again)",
                )
            await self.refresh_signing_session()
            refreshed = True

    def _sign(
        self,
        method: str,
        path_and_query: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> SignedRequest:
        """``headers``: those that will be sent, signed once the host is known to verify
        them (Pairing.signs_headers); until then the reference way."""
        return sign_request(
            self.pairing.client_key,
            self.pairing.signing_session_id,
            method,
            path_and_query,
            body,
            self.clock.now(),
            headers=headers if self.pairing.signs_headers else None,
        )

    async def _send_signed(
        self, method: str, signed: SignedRequest, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """Send ``signed`` through the relay; a relay session that is gone is re-created
        once and the very same signed request is sent again."""
        all_headers = {**headers, **signed.headers()}
        for attempt in range(2):
            session = await self._relay_session()
            url = _proxy_base(self.pairing.relay_url, self.pairing.host_id, session)
            request = self._http.build_request(
                method, url + signed.path_and_query, headers=all_headers, content=body
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise ClientError(f"cannot reach the relay: {exc}") from None
            self._note_use()
            if attempt == 0 and _relay_session_gone(response):
                await response.aclose()
                self._set_relay_session(None)
                continue
            return response
        raise AssertionError("unreachable")

    async def _check_head(self, signed: SignedRequest, response: httpx.Response) -> BodyCheck:
        headers = _lower_headers(response)
        try:
            if wire.RESP_SIGNATURE not in headers and _is_relay_error(response):
                _, message = _error_fields(await _read_small(response))
                raise RelayRefusedError(response.status_code, message)
            return check_response(
                self.pairing.host_key,
                signed,
                response.status_code,
                headers,
                _header_lines(response),
                self._learn_signed_headers,
            )
        except BaseException:
            await response.aclose()
            raise

    async def _read_refusal(self, signed: SignedRequest, response: httpx.Response) -> _Refusal:
        headers = _lower_headers(response)
        try:
            body = await _read_small(response)
        finally:
            await response.aclose()
        verified = False
        with contextlib.suppress(VerificationError):
            check = check_response(
                self.pairing.host_key,
                signed,
                401,
                headers,
                _header_lines(response),
                self._learn_signed_headers,
            )
            if not check.streamed:
                check.feed(body)
                check.finish()
                verified = True
        self._observe_host_time(headers.get(wire.HOST_TIME), verified=verified)
        reason, message = _error_fields(body)
        return _Refusal(reason, message, verified)

    async def refresh_signing_session(self) -> str:
        """A new signing session for this client (POST signing-session/refresh)."""
        base = await self._proxy_base()
        for attempt in range(2):
            payload = sign_refresh(
                self.pairing.client_key, self.pairing.client_id, self.clock.now()
            )
            try:
                data = await _auth_call(self._http, base, "signing-session/refresh", payload)
                break
            except _AuthCallError as exc:
                self._observe_host_time(exc.host_time, verified=False)
                if attempt == 0 and exc.reason == "clock_skew":
                    continue
                if exc.reason == "client_revoked":
                    raise HostRefusedError(
                        exc.status, exc.reason, "the host revoked this client: pair again"
                    ) from None
                raise HostRefusedError(exc.status, exc.reason, exc.message) from None
        session = data.get("signing_session_id")
        try:
            session = str(uuid.UUID(str(session)))
        except ValueError:
            raise ClientError("the host's refresh answer has no signing_session_id") from None
        self.pairing = self.pairing.with_signing_session(session, self.clock.local())
        self.refreshes += 1
        self._save()
        return session

    async def _renew_if_stale(self) -> None:
        now = self.clock.local()
        if (
            now - self.pairing.session_started_at > SESSION_MAX_AGE
            or now - self.pairing.session_used_at > SESSION_MAX_IDLE
        ):
            await self.refresh_signing_session()

    def _observe_host_time(self, header: str | None, *, verified: bool) -> None:
        # Only a correction the host signed is saved; an unsigned one (it may be the
        # relay's) lasts for this run.
        if self.clock.observe(header, verified=verified) and verified:
            self.pairing = dataclasses.replace(self.pairing, clock_offset=self.clock.offset)
            self._save()

    def _learn_signed_headers(self) -> None:
        """A verified answer of the host signed its headers: from now on, for good, this
        pairing's requests sign theirs (saved at once)."""
        if not self.pairing.signs_headers:
            self.pairing = self.pairing.with_signed_headers()
            self._save()

    def _note_use(self) -> None:
        now = self.clock.local()
        self.pairing = self.pairing.used(now)
        if now - self._saved_use >= SAVE_USE_EVERY:  # a file write at most this often
            self._saved_use = now
            self._save()

    # --------------------------------------------------------------- relay session

    async def _relay_session(self) -> str:
        if self.pairing.relay_session_id is None:
            if self.token is None:
                raise ClientError(
                    "a relay token is needed to open a relay session: give --token, "
                    "--token-file or AGENT_RELAY_TOKEN"
                )
            session = await _create_relay_session(
                self._http, self.pairing.relay_url, self.pairing.host_id, self.token
            )
            self.relay_session_creations += 1
            self._set_relay_session(session)
        assert self.pairing.relay_session_id is not None
        return self.pairing.relay_session_id

    async def _proxy_base(self) -> str:
        session = await self._relay_session()
        return _proxy_base(self.pairing.relay_url, self.pairing.host_id, session)

    def _set_relay_session(self, session: str | None) -> None:
        self.pairing = self.pairing.with_relay_session(session)
        self._save()

    def _save(self) -> None:
        if self.store is not None:
            self.store.save(self.pairing)

    # --------------------------------------------------------------- WebSocket

    @contextlib.asynccontextmanager
    async def websocket(self, path: str) -> AsyncIterator[SignedWebSocket]:
        """A WebSocket to the host whose every frame is signed both ways."""
        parts = urlsplit(_check_path(path))
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        await self._renew_if_stale()
        for attempt in range(3):
            signed = sign_request(
                self.pairing.client_key,
                self.pairing.signing_session_id,
                "GET",
                wire.signed_ws_path(parts.path, pairs),
                b"",
                self.clock.now(),
            )
            query = wire.form_urlencode(pairs + signed.query_pairs())
            base = await self._proxy_base()
            url = ws_url(base) + parts.path + "?" + query
            try:
                connection = await websockets.connect(
                    url,
                    max_size=MAX_ENVELOPE_SIZE,
                    open_timeout=self.limits.connect_timeout,
                    additional_headers={wire.ACCEPT_STREAM_SIGNING: "1"},
                    ssl=_tls_context() if url.startswith("wss:") else None,
                )
            except websockets.InvalidStatus as exc:
                status = exc.response.status_code
                headers = {k.lower(): v for k, v in exc.response.headers.raw_items()}
                if status in (401, 403) and wire.HOST_TIME not in headers and attempt == 0:
                    self._set_relay_session(None)
                    continue
                if status == 401 and attempt < 2:
                    self._observe_host_time(headers.get(wire.HOST_TIME), verified=False)
                    reason, message = _error_fields(bytes(exc.response.body or b""))
                    if reason not in REFRESHABLE:
                        raise HostRefusedError(401, reason, message) from None
                    await self.refresh_signing_session()
                    continue
                raise RelayRefusedError(
                    status, _error_fields(exc.response.body or b"")[1]
                ) from None
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                raise ClientError(f"cannot open the WebSocket through the relay: {exc}") from None
            break
        else:
            raise ClientError("the WebSocket upgrade kept being refused")
        self._note_use()
        socket_ = SignedWebSocket(
            connection,
            FrameSigner(self.pairing.client_key, signed.session_id, signed.nonce),
            FrameVerifier(self.pairing.host_key, signed.session_id, signed.nonce),
        )
        try:
            yield socket_
        finally:
            await connection.close()


class SignedWebSocket:
    def __init__(
        self, connection: ClientConnection, signer: FrameSigner, verifier: FrameVerifier
    ) -> None:
        self._connection = connection
        self._signer = signer
        self._verifier = verifier
        self.closed_by_host: tuple[int, str] | None = None

    async def send(self, msg_type: str, payload: bytes) -> None:
        try:
            await self._connection.send(self._signer.sign(msg_type, payload))
        except websockets.ConnectionClosed:
            raise ClientError("the WebSocket is closed") from None

    async def send_text(self, text: str) -> None:
        await self.send("text", text.encode())

    async def send_bytes(self, data: bytes) -> None:
        await self.send("binary", data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(ClientError):
            await self.send("close", close_payload(code, reason))
        await self._connection.close()

    async def recv(self) -> Frame:
        """The next verified frame from the host; a ``ping`` is answered for you. At the
        host's signed close, returns that close frame; an end without it raises."""
        while True:
            try:
                message = await self._connection.recv()
            except websockets.ConnectionClosed:
                if self.closed_by_host is not None:
                    return Frame("close", close_payload(*self.closed_by_host))
                raise VerificationError(
                    "the WebSocket ended without the host's signed close frame"
                ) from None
            frame = self._verifier.open(message)
            if frame.msg_type == "ping":
                await self.send("pong", frame.payload)
                continue
            if frame.msg_type == "close":
                self.closed_by_host = frame.close_code()
            return frame

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        while True:
            frame = await self.recv()
            if frame.msg_type == "close":
                return
            if frame.msg_type != "pong":
                yield frame


# ------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Refusal:
    reason: str
    message: str
    verified: bool

    def error(self) -> HostRefusedError:
        if self.reason == "client_revoked":
            return HostRefusedError(401, self.reason, "the host revoked this client: pair again")
        return HostRefusedError(401, self.reason, self.message)


class _AuthCallError(Exception):
    def __init__(self, status: int, reason: str, message: str, host_time: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.host_time = host_time


def _http_client(limits: ClientLimits) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=limits.connect_timeout,
        read=limits.read_timeout,
        write=limits.connect_timeout,
        pool=limits.connect_timeout,
    )
    return httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls_context()
    )


def _tls_context() -> ssl.SSLContext:
    """The connector's trust: the system's roots (and ``SSL_CERT_FILE``) plus the CA in
    ``AGENT_RELAY_CA_FILE``, for a relay behind a private CA."""
    from ..tls import tls_context

    ca_file = os.environ.get("AGENT_RELAY_CA_FILE")
    return tls_context(Path(ca_file) if ca_file else None)


async def _create_relay_session(
    http: httpx.AsyncClient, relay_url: str, host_id: str, token: str
) -> str:
    try:
        response = await http.post(
            f"{relay_url}/v1/relay/create/{host_id}",
            headers={"authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        raise ClientError(f"cannot reach the relay at {relay_url}: {exc}") from None
    if response.status_code != 200:
        _, message = _error_fields(response.content[:SMALL_ANSWER])
        raise RelayRefusedError(response.status_code, message or response.reason_phrase)
    try:
        return str(uuid.UUID(str(response.json()["session_id"])))
    except (ValueError, KeyError, TypeError):
        raise ClientError("the relay's create answer has no session_id") from None


async def _auth_call(
    http: httpx.AsyncClient, base: str, route: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """POST to one of the host's unsigned pairing routes; the ``data`` of its answer."""
    try:
        response = await http.post(f"{base}{AUTH_PREFIX}/{route}", json=payload)
    except httpx.HTTPError as exc:
        raise ClientError(f"cannot reach the relay: {exc}") from None
    body = response.content[:SMALL_ANSWER]
    if response.status_code != 200:
        reason, message = _error_fields(body)
        if reason == "unknown" and wire.HOST_TIME not in response.headers:
            raise RelayRefusedError(response.status_code, message)  # the relay's own
        if route.startswith("spake2/"):
            raise PairingError(f"the host refused pairing ({reason}): {message}")
        raise _AuthCallError(
            response.status_code, reason, message, response.headers.get(wire.HOST_TIME)
        )
    try:
        document = json.loads(body)
        data = document["data"] if isinstance(document, dict) and "data" in document else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or document.get("success") is not True:
        raise ClientError(f"the host's {route} answer is not what the protocol says")
    return data


async def _read_small(response: httpx.Response) -> bytes:
    out = bytearray()
    with contextlib.suppress(httpx.HTTPError):
        async for data in response.aiter_raw():
            out += data
            if len(out) > SMALL_ANSWER:
                break
    return bytes(out[:SMALL_ANSWER])


def _error_fields(body: bytes | bytearray) -> tuple[str, str]:
    """``reason`` and a message from a JSON error body (the host's or the relay's)."""
    try:
        document = json.loads(body)
    except ValueError:
        return "unknown", body[:200].decode("utf-8", "replace").strip() or "no details"
    if not isinstance(document, dict):
        return "unknown", "no details"
    reason = document.get("reason")
    message = document.get("message") or document.get("error") or "no details"
    return (str(reason)[:64] if reason else "unknown"), str(message)[:500]


def _header_lines(response: httpx.Response) -> list[tuple[str, str]]:
    """Every header line as received: names lower case, values as the bytes sent."""
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers.raw]


def _lower_headers(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


def _looks_like_host(response: httpx.Response) -> bool:
    """A 401 that says it is the host's (the relay's own 401s carry no host time)."""
    return wire.HOST_TIME in response.headers or wire.RESP_SIGNATURE in response.headers


def _relay_session_gone(response: httpx.Response) -> bool:
    """The relay's own refusal of the relay session (invalid, revoked, another host's)."""
    return (
        response.status_code in (401, 403)
        and wire.HOST_TIME not in response.headers
        and wire.RESP_SIGNATURE not in response.headers
    )


def _is_relay_error(response: httpx.Response) -> bool:
    """An error the relay answers itself (host offline, overloaded, timed out): never
    the host's data, and reported as the relay's."""
    return response.status_code in (401, 403, 404, 429, 502, 503, 504)


def _proxy_base(relay_url: str, host_id: str, relay_session: str) -> str:
    return f"{relay_url}/v1/relay/h/{host_id}/s/{relay_session}"


def _check_path(path: str) -> str:
    if not path.startswith("/") or any(c in path for c in "\r\n #") or len(path) > 8000:
        raise ClientError(f"a path must start with / and hold no spaces or fragment: {path!r}")
    return path


def _check_uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ClientError(f"{what} must be a UUID, not {value!r}") from None


def default_client_name() -> str:
    return f"agent-relay on {os.uname().nodename}"

"""The host's sans-IO rules for data-channel peers: who a channel belongs to, what a request
over it must prove, and the bounds on peers.

A channel belongs to the signing session of the signed offer that opened it. Every request
or WebSocket over it passes the same signature check as a relayed one (:func:`admit`, the
one place that calls into the trust layer) and must be signed in that same session; the
pairing routes are never served over a channel. The check itself is the trust core's
(:mod:`agent_relay.trust.admission`), the same as for the connector and the middleware.
The table ends a client's peers when the client is revoked or its session ends,
and closes idle ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..trust.admission import Admission, Reply, RequestHead
from ..trust.admission import admit as trust_admit
from ..trust.body import BodyBuffer
from ..trust.errors import TrustError
from ..trust.host import API_PREFIX, TrustHost, error_reply
from ..trust.sessions import VerifiedRequest
from .limits import ChannelLimits
from .messages import Headers

OFFER_PATH = "/api/webrtc/offer"


@dataclass(frozen=True, slots=True)
class ChannelOwner:
    """The signing session an offer was verified in."""

    client_id: str
    session_id: str


class ChannelRefused(TrustError):
    """A request that is well signed but not allowed over a channel."""


def single_headers(headers: Headers) -> dict[str, str]:
    """The first value of each header, names lower-case: what the signature check reads."""
    return {name.lower(): values[0] for name, values in headers.items() if values}


class ChannelAdmission:
    """One channel request on its way in, its body fed as it comes (the trust core's
    :class:`~agent_relay.trust.admission.Admission`, as through the relay): the signature,
    body hash included, is checked by :meth:`finish` once the whole body is in; nothing
    of the body is passed on before. :attr:`body` then holds it; :meth:`close` frees it."""

    def __init__(self, admission: Admission, owner: ChannelOwner) -> None:
        self._admission = admission
        self._owner = owner
        self.body: BodyBuffer = admission.body

    def feed(self, data: bytes) -> Reply | None:
        """Body bytes; a :class:`Reply` (413) once the body is too big."""
        return self._admission.feed(data)

    def finish(self, now: float) -> VerifiedRequest | Reply:
        outcome = self._admission.finish(lambda: now)
        if isinstance(outcome, Reply):
            return outcome
        verified = outcome.verified
        assert verified is not None  # relayed and outside the pairing routes: signed
        owner = self._owner
        if verified.session_id != owner.session_id or verified.client_id != owner.client_id:
            refused = ChannelRefused(403, "wrong_session", "signed in another session")
            return error_reply(refused, now)
        return verified

    def close(self) -> None:
        self._admission.close()


def begin(
    trust: TrustHost,
    owner: ChannelOwner,
    method: str,
    target: str,
    headers: Headers,
    now: float,
    *,
    upgrade: bool = False,
) -> ChannelAdmission | Reply:
    """Start checking one channel request with the trust core's admission, exactly as a
    relayed one; a :class:`Reply` is a refusal decided from the head (send it as is)."""
    path = target.partition("?")[0]
    if path.startswith(API_PREFIX) or path == OFFER_PATH:
        # The pairing routes, enrollment code included, and nested offers: relay only.
        refused = ChannelRefused(403, "not_over_channel", "this route is not served over WebRTC")
        return error_reply(refused, now)
    lines = tuple((name.lower(), v) for name, values in headers.items() for v in values)
    head = RequestHead(
        method, target, single_headers(headers), relayed=True, websocket=upgrade, lines=lines
    )
    admission = trust_admit(trust, head, "webrtc", now)
    assert admission is not None  # relayed: the trust core always decides
    if admission.refusal is not None:
        admission.close()
        return admission.refusal
    return ChannelAdmission(admission, owner)


def admit(
    trust: TrustHost,
    owner: ChannelOwner,
    method: str,
    target: str,
    headers: Headers,
    body: bytes,
    now: float,
    *,
    upgrade: bool = False,
) -> VerifiedRequest | Reply:
    """A request whose body came whole (in the message): :func:`begin`, fed, finished.
    Then that it belongs to this channel. A :class:`Reply` is a refusal to send."""
    started = begin(trust, owner, method, target, headers, now, upgrade=upgrade)
    if isinstance(started, Reply):
        return started
    try:
        return started.feed(body) or started.finish(now)
    finally:
        started.close()


@dataclass(slots=True)
class _Entry:
    owner: ChannelOwner
    offer_id: str  # the offer's session_id: a new offer with the same id replaces the peer
    close: Callable[[], None]
    last_used: float
    unwatch: Callable[[], None] = field(default=lambda: None)


class PeerTable:
    """The host's live peers, bounded per client and in total."""

    def __init__(self, limits: ChannelLimits) -> None:
        self.limits = limits
        self._peers: dict[int, _Entry] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._peers)

    def count(self, client_id: str) -> int:
        return sum(1 for e in self._peers.values() if e.owner.client_id == client_id)

    def add(
        self,
        owner: ChannelOwner,
        offer_id: str,
        close: Callable[[], None],
        now: float,
        trust: TrustHost | None = None,
    ) -> int:
        """Register a peer (before answering its offer); returns its handle. A peer with the
        same owner and offer id is closed and replaced; over a bound: ChannelRefused (429)."""
        for handle, entry in list(self._peers.items()):
            if entry.owner == owner and entry.offer_id == offer_id:
                self.remove(handle)
                entry.close()
        if self.count(owner.client_id) >= self.limits.max_peers_per_client:
            raise ChannelRefused(429, "too_many_peers", "too many WebRTC peers for this client")
        if len(self._peers) >= self.limits.max_peers:
            raise ChannelRefused(429, "too_many_peers", "too many WebRTC peers on this host")
        self._next += 1
        handle = self._next
        entry = _Entry(owner, offer_id, close, now)
        self._peers[handle] = entry
        if trust is not None:
            # Revoking the client ends its sessions; the channel ends with them at once.
            entry.unwatch = trust.watch(owner.session_id, lambda: self._end(handle))
        return handle

    def touch(self, handle: int, now: float) -> None:
        entry = self._peers.get(handle)
        if entry is not None:
            entry.last_used = now

    def remove(self, handle: int) -> None:
        entry = self._peers.pop(handle, None)
        if entry is not None:
            entry.unwatch()

    def _end(self, handle: int) -> None:
        entry = self._peers.get(handle)
        if entry is not None:
            self.remove(handle)
            entry.close()

    def sweep(self, now: float, live_sessions: Mapping[str, bool] | None = None) -> list[int]:
        """Close peers idle past the limit, or whose session is no longer live."""
        ended = []
        for handle, entry in list(self._peers.items()):
            idle = now - entry.last_used > self.limits.idle_timeout
            gone = live_sessions is not None and not live_sessions.get(entry.owner.session_id)
            if idle or gone:
                self._end(handle)
                ended.append(handle)
        return ended

    def end_client(self, client_id: str) -> None:
        for handle, entry in list(self._peers.items()):
            if entry.owner.client_id == client_id:
                self._end(handle)

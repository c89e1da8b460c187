"""Admission for proxied requests by what their user makes the relay hold.

Every stream the relay opens to a host grants the host yamux's initial window (256 KiB),
which it may send at once and which cannot be refused; a client that then does not read
leaves all of it in the relay. The receive budget (mux/budget.py) keeps later grants
small, but it cannot take an initial window back, so 200 clients that never read cost
the relay 50 MiB however small the budget. What can be refused is the next stream.

So a stream is opened for a user only while what that user's streams hold fits the
budget: the bytes really buffered for them (a ``BufferAccount`` the streams count
into), plus a reservation of one initial window for each stream opened in the last
moment, whose host may not have sent its answer yet. A reservation ends ``settle``
seconds after the answer's head (by then a host that floods has filled the window, and
the bytes count themselves), or when the stream ends, so a user's fast requests, event
streams and reading downloads cost nothing once they run. Beyond the budget a request
waits, first come first served per user, up to ``max_wait`` seconds (a client that
reads frees the budget as it goes), then gets 503.

``budget`` here is one user's share (the relay passes half its receive budget). Users
are not each other's limit: each has a whole share, and the relay as a whole takes up to
twice a share before it holds back any user that has more than an eighth of one. A user
with nothing open is always admitted, so one request always runs.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from dataclasses import dataclass, field

from ..mux import BufferAccount
from ..mux.frame import INITIAL_WINDOW

SETTLE = 1.0  # seconds after the answer's head that its stream's reservation ends
MAX_WAIT = 10.0  # seconds a request waits for room before it gets 503
QUEUE = 1024  # requests of one user waiting at most
POLL = 0.05  # seconds between checks while requests wait (reading clients free room)


class AdmissionRefused(Exception):
    """No room for the user's request in time (or too many of theirs wait)."""


@dataclass(eq=False)
class _User:
    user_id: uuid.UUID
    account: BufferAccount
    reserved: int = 0
    streams: int = 0
    waiters: collections.deque[asyncio.Future[Ticket]] = field(default_factory=collections.deque)


class BufferAdmission:
    def __init__(
        self,
        budget: int,
        *,
        reserve: int = INITIAL_WINDOW,
        settle: float = SETTLE,
        max_wait: float = MAX_WAIT,
        queue: int = QUEUE,
        poll: float = POLL,
    ) -> None:
        if budget < 1 or reserve < 0 or settle < 0 or max_wait < 0 or queue < 0 or poll <= 0:
            raise ValueError("buffer admission needs a positive budget and poll")
        self.budget = budget
        self.reserve = reserve
        self.settle = settle
        self.max_wait = max_wait
        self.queue = queue
        self.poll = poll
        self.total = BufferAccount()  # every user's account counts into this one
        self.reserved = 0
        self.refused = 0  # requests that waited too long or found the queue full
        self._users: dict[uuid.UUID, _User] = {}
        self._waiting: set[_User] = set()
        self._poller: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return sum(len(user.waiters) for user in self._waiting)

    def held_by(self, user_id: uuid.UUID) -> int:
        """Bytes buffered plus reserved for ``user_id``'s streams now."""
        user = self._users.get(user_id)
        return 0 if user is None else user.account.buffered + user.reserved

    async def admit(self, user_id: uuid.UUID) -> Ticket:
        """A ticket for one stream of ``user_id`` (at once, or once there is room);
        AdmissionRefused after ``max_wait``. Close the ticket when the stream is done."""
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User(user_id, BufferAccount(parent=self.total))
        if not user.waiters and self._fits(user):
            return self._grant(user)
        if len(user.waiters) >= self.queue:
            self.refused += 1
            raise AdmissionRefused("too many requests of this user wait for room")
        waiter: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        user.waiters.append(waiter)
        self._waiting.add(user)
        self._schedule_poll()
        try:
            async with asyncio.timeout(self.max_wait):
                return await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return waiter.result()  # granted just as the wait ran out
            self.refused += 1
            raise AdmissionRefused("this user's clients hold too much unread data") from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                waiter.result().close()  # granted as the request went away
            raise
        finally:
            waiter.cancel()  # still queued: _wake skips it
            self._forget_if_idle(user)

    # ------------------------------------------------------------------ inside

    def _fits(self, user: _User) -> bool:
        if not user.streams:
            return True
        need = user.account.buffered + user.reserved + self.reserve
        if need > self.budget:
            return False
        relay = self.total.buffered + self.reserved + self.reserve
        return relay <= 2 * self.budget or need <= self.budget // 8

    def _grant(self, user: _User) -> Ticket:
        user.streams += 1
        user.reserved += self.reserve
        self.reserved += self.reserve
        return Ticket(self, user)

    def _release(self, user: _User, reserved: int) -> None:
        user.reserved -= reserved
        self.reserved -= reserved
        if self._waiting:
            self._wake()

    def _closed(self, user: _User) -> None:
        user.streams -= 1
        self._forget_if_idle(user)
        if self._waiting:
            self._wake()

    def _forget_if_idle(self, user: _User) -> None:
        while user.waiters and user.waiters[0].done():
            user.waiters.popleft()
        if not user.waiters:
            self._waiting.discard(user)
        idle = not user.streams and not user.waiters and not user.account.buffered
        if idle and self._users.get(user.user_id) is user:
            del self._users[user.user_id]

    def _wake(self) -> None:
        for user in list(self._waiting):
            while user.waiters:
                waiter = user.waiters[0]
                if waiter.done():
                    user.waiters.popleft()
                    continue
                if not self._fits(user):
                    break
                user.waiters.popleft()
                waiter.set_result(self._grant(user))
            if not user.waiters:
                self._waiting.discard(user)

    def _schedule_poll(self) -> None:
        if self._poller is None:
            self._poller = asyncio.get_running_loop().call_later(self.poll, self._poll)

    def _poll(self) -> None:
        self._poller = None
        self._wake()
        if self._waiting:
            self._schedule_poll()


class Ticket:
    """One admitted stream: its account, and its reservation until it is answered."""

    __slots__ = ("_admission", "_closed", "_reserved", "_timer", "_user")

    def __init__(self, admission: BufferAdmission, user: _User) -> None:
        self._admission = admission
        self._user = user
        self._reserved = admission.reserve
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def account(self) -> BufferAccount:
        """Where the stream counts what it holds."""
        return self._user.account

    def answered(self) -> None:
        """The answer's head came: the reservation ends ``settle`` seconds from now."""
        if self._reserved and self._timer is None and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(
                self._admission.settle, self._end_reservation
            )

    def close(self) -> None:
        """The stream is done (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._end_reservation()
        self._admission._closed(self._user)

    def _end_reservation(self) -> None:
        self._timer = None
        reserved, self._reserved = self._reserved, 0
        if reserved:
            self._admission._release(self._user, reserved)

"""Accepting connections in a thread, and answering a liveness probe there, ahead of
whatever the event loop is busy with.

After a relay restart the whole fleet reconnects at once: for a few seconds the event
loop runs long batches of handshake work, and a probe that waits its turn in the accept
queue and then in the loop's ready queue takes hundreds of milliseconds (a liveness probe
with a 1 s timeout would restart a healthy relay in the middle of its herd). Here a thread
drains the kernel's accept queue as fast as connections come, and answers the few exact
``GET``/``HEAD`` routes it was given (``/health``) itself, when the request head is
already there, carries no body and no ``Origin`` (CORS answers are the loop's), and the
event loop turned within the last ``stall_after`` seconds: a wedged loop still fails its
liveness probe, as it should, since the probe then goes the loop's way and waits. Every
other connection is handed to the loop as it is (nothing read from it, only peeked at).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

STALL_AFTER = 5.0  # seconds without a loop turn: the loop answers (or does not) itself
_TICK = 0.5  # seconds between the loop's turns noted for the thread
_PEEK = 4096  # a probe's request head is a few dozen bytes
# Seconds a new connection may stay silent here before the loop gets it: any data routes
# it at once, so only silent connections wait (an HTTP client sends first).
_HEAD_WAIT = 1.0
# What _answer_here found.
_ANSWERED, _INCOMPLETE, _LOOP, _GONE = object(), object(), object(), object()


class ThreadAcceptor:
    """``accept()`` on ``sock`` in a thread; connections go to ``adopt`` on the loop,
    probes of ``answers`` (path -> JSON body) are answered here."""

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        adopt: Callable[[socket.socket], None],
        answers: Mapping[bytes, bytes],
        *,
        render_date: Callable[[], bytes],
        stall_after: float = STALL_AFTER,
    ) -> None:
        self.sock = sock
        self._loop = loop
        self._adopt = adopt
        self._answers = dict(answers)
        self._render_date = render_date
        self._stall_after = stall_after
        self._turned = time.monotonic()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="http-acceptor", daemon=True)
        self._ticker: asyncio.Task[None] | None = None
        self.answered = 0  # probes answered by the thread (for tests)

    def start(self) -> None:
        self.sock.setblocking(False)
        self._ticker = self._loop.create_task(self._tick())
        self._thread.start()

    async def stop(self) -> None:
        """Stop accepting and close the listening socket (connections already handed
        over are the loop's)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 5.0)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.sock.close()
        self._wake_r.close()
        self._wake_w.close()

    async def _tick(self) -> None:
        while True:
            self._turned = time.monotonic()
            await asyncio.sleep(_TICK)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        # Connections that sent nothing yet wait here briefly (without holding up the
        # accepts behind them), until their first bytes show what they are.
        waiting: dict[socket.socket, float] = {}
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            try:
                while not self._stopping:
                    timeout = None
                    if waiting:
                        timeout = max(0.0, min(waiting.values()) - time.monotonic())
                    for key, _ in selector.select(timeout):
                        if key.fileobj is self._wake_r or self._stopping:
                            return
                        if key.fileobj is self.sock:
                            self._accept_ready(selector, waiting)
                        else:
                            conn = key.fileobj
                            assert isinstance(conn, socket.socket)
                            self._route(conn, selector, waiting, last_chance=False)
                    now = time.monotonic()
                    for conn, deadline in list(waiting.items()):
                        if deadline <= now:
                            self._route(conn, selector, waiting, last_chance=True)
            finally:
                for conn in waiting:
                    conn.close()

    def _accept_ready(
        self, selector: selectors.BaseSelector, waiting: dict[socket.socket, float]
    ) -> None:
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: let some close first
                log.warning("cannot accept a connection: %s", exc)
                time.sleep(0.05)
                return
            self._route(conn, selector, waiting, last_chance=False)

    def _route(
        self,
        conn: socket.socket,
        selector: selectors.BaseSelector,
        waiting: dict[socket.socket, float],
        *,
        last_chance: bool,
    ) -> None:
        """Answer ``conn`` here, keep it waiting for its head, or hand it to the loop."""
        try:
            verdict = self._answer_here(conn)
        except OSError:
            verdict = _GONE
        if verdict is _INCOMPLETE and not last_chance:
            if conn not in waiting:
                waiting[conn] = time.monotonic() + _HEAD_WAIT
                selector.register(conn, selectors.EVENT_READ)
            return
        if conn in waiting:
            del waiting[conn]
            selector.unregister(conn)
        if verdict is _ANSWERED or verdict is _GONE:
            conn.close()
            return
        try:
            conn.setblocking(False)
            self._loop.call_soon_threadsafe(self._adopt, conn)
        except (OSError, RuntimeError):  # gone, or the loop is closed
            conn.close()

    def _answer_here(self, conn: socket.socket) -> object:
        """Answer a probe of one of our routes, if the connection is one (_ANSWERED);
        _INCOMPLETE while nothing came yet; else _LOOP (or _GONE: closed)."""
        try:
            head = conn.recv(_PEEK, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return _INCOMPLETE
        if not head:
            return _GONE
        end = head.find(b"\r\n\r\n")
        # A probe's head comes in one piece, alone; anything else (a partial head, a
        # pipelined request after it) is the loop's to read.
        if end < 0 or end + 4 != len(head) or not head.startswith((b"GET /", b"HEAD /")):
            return _LOOP
        line, _, fields = head[:end].partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _LOOP
        body = self._answers.get(parts[1].partition(b"?")[0])
        if body is None:
            return _LOOP
        lowered = b"\r\n" + fields.lower()
        if any(name in lowered for name in (b"\norigin:", b"\ncontent-length:", b"\ntransfer-")):
            return _LOOP
        if time.monotonic() - self._turned > self._stall_after:
            return _LOOP  # the loop is stuck: it answers (or not) itself
        conn.recv(end + 4)  # the head, peeked whole above: consumed, so close sends no RST
        head_only = parts[0] == b"HEAD"
        answer = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\ndate: "
            + self._render_date()
            + b"\r\nconnection: close\r\n\r\n"
            + (b"" if head_only else body)
        )
        with contextlib.suppress(OSError):
            # A fresh socket's buffer takes it; the close that follows sends the FIN (few
            # system calls: each one may wait for the GIL while the loop is busy).
            conn.send(answer, socket.MSG_DONTWAIT)
        self.answered += 1
        return _ANSWERED


def single_listener(host: str, port: int, backlog: int) -> socket.socket | None:
    """A listening TCP socket for ``host:port`` when it names one address (asyncio binds
    every address of a name such as ``localhost``: None, and the caller does that)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = {(family, address[:2]): address for family, _, _, _, address in infos}
    if len(addresses) != 1:
        return None
    [((family, _), address)] = addresses.items()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock

"""HTTP/1.1 framing as a sans-IO state machine: bytes in, heads and body pieces out;
heads and body pieces in, bytes out. The hot path's codec, at both hops.

It accepts and rejects what h11 does (the reference; ``tests/unit/test_codec_fuzz.py``
checks the two against each other) and tracks the same connection states (keep-alive,
``100-continue``, upgrades, HEAD/204/304 framing), but it builds no validated event
objects: a head is parsed by a few regular expressions run over the whole head at once,
and written back as bytes straight from its (already valid) parts. Outgoing heads are not
re-validated header by header; one scan of the written head refuses CR, LF or NUL inside
a line, so nothing a peer sent can split a header.

Header names come out in lower case; values as received (bytes).

Head parsing and writing have two implementations with the same results: the functions
below (the reference) and the compiled core's (``agent_relay._native``), used when it is
built; ``tests/unit/test_native_fuzz.py`` runs both on the same inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from http import HTTPStatus
from typing import Final

from .. import _native

Headers = list[tuple[bytes, bytes]]

# --------------------------------------------------------------------- grammar
# RFC 9110/9112, with the reference's leniencies: any byte but NUL and whitespace in a
# field value, a status line without a reason, bare LF line ends.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VCHAR = rb"[^\x00\s]"
_VALUE = rb"(?:" + _VCHAR + rb"+(?:[ \t]+" + _VCHAR + rb"+)*)?"
_FIELD = rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")[ \t]*"
_FIELD_LINE = re.compile(_FIELD)
_FIELD_BLOCK = re.compile(rb"(?:" + _FIELD + rb"\r?\n)*")
_FIELD_ITEMS = re.compile(_FIELD + rb"\r?\n")
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])")
_STATUS_LINE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|" + _VCHAR + rb")*))?")
_CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_FOLD = re.compile(rb"[ \t]+")
_DIGITS = re.compile(rb"[0-9]+")
_MAX_LENGTH_DIGITS = 20

# One Data piece never carries more than this many chunks' worth of a chunked body, nor
# more bytes: a body of tiny chunks is handed on in bounded, coalesced pieces.
MAX_CHUNKS_PER_PIECE = 256
MAX_PIECE = 256 * 1024

_PHRASES = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


class ProtocolError(Exception):
    """The peer (or, from ``send_*``, our own side) broke HTTP/1.1. ``status`` is the
    answer a server should give."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(ProtocolError):
    """What we were asked to send is not valid HTTP/1.1 at this point."""


# --------------------------------------------------------------------- events


class Request:
    __slots__ = ("headers", "http_version", "method", "target")

    def __init__(
        self, method: bytes, target: bytes, headers: Headers, http_version: bytes = b"1.1"
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.target!r}, {self.headers!r})"


class Response:
    """A final response head (status 200-999)."""

    __slots__ = ("headers", "http_version", "reason", "status_code")

    def __init__(
        self, status_code: int, headers: Headers, reason: bytes = b"", http_version: bytes = b"1.1"
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.reason = reason
        self.http_version = http_version

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status_code}, {self.headers!r})"


class InformationalResponse(Response):
    """A ``1xx`` head: ``100 Continue``, or the ``101`` that switches protocols."""

    __slots__ = ()


class Data:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class EndOfMessage:
    __slots__ = ()


class ConnectionClosed:
    __slots__ = ()


class _Signal(Enum):
    NEED_DATA = "need data"  # read more from the peer and feed it in
    PAUSED = "paused"  # the peer's message is done (or switched); nothing to parse now


NEED_DATA: Final = _Signal.NEED_DATA
PAUSED: Final = _Signal.PAUSED
_END: Final = EndOfMessage()
_CLOSED: Final = ConnectionClosed()

Head = Request | Response
Event = Request | Response | Data | EndOfMessage | ConnectionClosed


class State(Enum):
    IDLE = "idle"
    SEND_RESPONSE = "send response"  # (the server) the request head is in
    SEND_BODY = "send body"
    DONE = "done"
    MUST_CLOSE = "must close"
    CLOSED = "closed"
    MIGHT_SWITCH = "might switch protocol"  # (the client) its upgrade awaits the answer
    SWITCHED = "switched protocol"
    ERROR = "error"


IDLE, SEND_RESPONSE, SEND_BODY, DONE = State.IDLE, State.SEND_RESPONSE, State.SEND_BODY, State.DONE
MUST_CLOSE, CLOSED, MIGHT_SWITCH = State.MUST_CLOSE, State.CLOSED, State.MIGHT_SWITCH
SWITCHED, ERROR = State.SWITCHED, State.ERROR
_FINISHED = frozenset({DONE, MUST_CLOSE, CLOSED})

# --------------------------------------------------------------------- head parsing


def _split_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs of a header block (lines each ending in LF), names lower
    case. The whole block is checked in one match; folded lines take the slow way."""
    if _FIELD_BLOCK.fullmatch(block) is not None:
        return [(name.lower(), value) for name, value in _FIELD_ITEMS.findall(block)]
    lines = [line.removesuffix(b"\r") for line in block.split(b"\n")[:-1]]
    unfolded: list[bytes] = []
    for line in lines:
        fold = _FOLD.match(line)
        if fold is None:
            unfolded.append(line)
        elif not unfolded:
            raise ProtocolError("continuation line at start of headers")
        else:
            unfolded[-1] += b" " + line[fold.end() :]
    fields = []
    for line in unfolded:
        match = _FIELD_LINE.fullmatch(line)
        if match is None:
            raise ProtocolError(f"illegal header line: {line!r}")
        fields.append((match[1].lower(), match[2]))
    return fields


class _Framing:
    """What a head says about its message: facts the state machine needs."""

    __slots__ = ("chunked", "close", "expect_continue", "length", "upgrade")

    def __init__(self) -> None:
        self.chunked = False
        self.length: int | None = None
        self.close = False  # Connection: close
        self.expect_continue = False
        self.upgrade = False  # a non-empty Upgrade header


_CHUNKED, _CLOSE, _EXPECT_CONTINUE, _UPGRADE = 1, 2, 4, 8  # the compiled core's flags


def _framing_from(flags: int, length: int | None) -> _Framing:
    framing = _Framing()
    if flags:
        framing.chunked = bool(flags & _CHUNKED)
        framing.close = bool(flags & _CLOSE)
        framing.expect_continue = bool(flags & _EXPECT_CONTINUE)
        framing.upgrade = bool(flags & _UPGRADE)
    framing.length = length
    return framing


def _comma_values(value: bytes) -> list[bytes]:
    return [part for part in (p.strip() for p in value.lower().split(b",")) if part]


_SPECIAL = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"}
)


def _normalize(
    fields: Iterable[tuple[bytes, bytes]], framing: _Framing, error: type[ProtocolError]
) -> Headers:
    """Check the framing headers (one Content-Length value, only ``chunked``) and note
    what the head says; the headers as they will be seen (a repeated Content-Length once,
    Transfer-Encoding in lower case). Only the few headers that matter are looked at."""
    headers = list(fields)
    special = [(i, name, value) for i, (name, value) in enumerate(headers) if name in _SPECIAL]
    if not special:
        return headers
    seen_length: bytes | None = None
    repeated: set[int] = set()
    for i, name, value in special:
        if name == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            if len(lengths) != 1:
                raise error("conflicting Content-Length headers")
            length = lengths.pop()
            if _DIGITS.fullmatch(length) is None or len(length) > _MAX_LENGTH_DIGITS:
                raise error("bad Content-Length")
            if seen_length is not None:
                if seen_length != length:
                    raise error("conflicting Content-Length headers")
                repeated.add(i)
                continue
            seen_length = length
            framing.length = int(length)
            if length != value:
                headers[i] = (name, length)
        elif name == b"transfer-encoding":
            if framing.chunked:
                raise error("multiple Transfer-Encoding headers", 501)
            coding = value.lower()
            if coding != b"chunked":
                raise error("Only Transfer-Encoding: chunked is supported", 501)
            framing.chunked = True
            if coding != value:
                headers[i] = (name, coding)
        elif name == b"connection":
            if b"close" in value.lower() and b"close" in _comma_values(value):
                framing.close = True
        elif name == b"expect":
            if b"100-continue" in _comma_values(value):
                framing.expect_continue = True
        elif _comma_values(value):  # upgrade
            framing.upgrade = True
    if repeated:
        return [field for i, field in enumerate(headers) if i not in repeated]
    return headers


def _check_host(headers: Headers, http_version: bytes, error: type[ProtocolError]) -> None:
    hosts = [name for name, _ in headers].count(b"host")
    if hosts == 0 and http_version == b"1.1":
        raise error("Missing mandatory Host: header")
    if hosts > 1:
        raise error("Found multiple Host: headers")


RequestHead = tuple[bytes, bytes, bytes, Headers, _Framing]  # method, target, version
ResponseHead = tuple[bytes, int, bytes, Headers, _Framing]  # version, status, reason


def parse_request_head_pure(head: bytes) -> RequestHead:
    """A request head (its lines, each ending in LF, without the empty line) parsed and
    checked. The status range and the connection's state are the caller's to check."""
    if not head:
        raise ProtocolError("no request line received")
    end = head.find(b"\n")
    line = head[:end].removesuffix(b"\r")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"illegal request line: {line!r}")
    method, target, version = match.groups()
    framing = _Framing()
    headers = _normalize(_split_fields(head[end + 1 :]), framing, ProtocolError)
    _check_host(headers, version, ProtocolError)
    return method, target, version, headers, framing


def parse_response_head_pure(head: bytes) -> ResponseHead:
    if not head:
        raise ProtocolError("no response line received")
    end = head.find(b"\n")
    line = head[:end].removesuffix(b"\r")
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"illegal status line: {line!r}")
    version, code, reason = match.groups()
    framing = _Framing()
    headers = _normalize(_split_fields(head[end + 1 :]), framing, ProtocolError)
    return version, int(code), reason or b"", headers, framing


def check_fields_pure(block: bytes) -> Headers:
    """A trailer block's fields, checked as a head's are."""
    return _normalize(_split_fields(block), _Framing(), ProtocolError)


def write_head_pure(first_line: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A head as bytes, Host first (as the reference writes it). One scan refuses a CR,
    LF or NUL inside a line (they would split the head or be read differently)."""
    if headers and headers[0][0] != b"host" and any(k == b"host" for k, _ in headers):
        headers = sorted(headers, key=lambda field: field[0] != b"host")  # stable
    data = first_line + b"".join([b"%s: %s\r\n" % field for field in headers]) + b"\r\n"
    count = len(headers) + 2
    if data.count(b"\n") != count or data.count(b"\r") != count or b"\x00" in data:
        raise LocalProtocolError("a header name or value holds CR, LF or NUL")
    return data


def _compiled(
    core: _native.Core,
) -> tuple[
    Callable[[bytes], RequestHead],
    Callable[[bytes], ResponseHead],
    Callable[[bytes], Headers],
    Callable[[bytes, Sequence[tuple[bytes, bytes]]], bytes],
]:
    """The compiled core's versions of the four functions above."""
    native_request, native_response = core.parse_request_head, core.parse_response_head
    native_fields, native_write = core.parse_fields, core.write_head

    def parse_request_head(head: bytes) -> RequestHead:
        try:
            method, target, version, headers, flags, length = native_request(head)
        except ValueError as exc:
            raise ProtocolError(*exc.args) from None
        return method, target, version, headers, _framing_from(flags, length)

    def parse_response_head(head: bytes) -> ResponseHead:
        try:
            version, status, reason, headers, flags, length = native_response(head)
        except ValueError as exc:
            raise ProtocolError(*exc.args) from None
        return version, status, reason, headers, _framing_from(flags, length)

    def check_fields(block: bytes) -> Headers:
        try:
            return native_fields(block)[0]
        except ValueError as exc:
            raise ProtocolError(*exc.args) from None

    def write_head(first_line: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        try:
            return native_write(first_line, headers)
        except TypeError:  # not (bytes, bytes) tuples: the general path
            return write_head_pure(first_line, headers)
        except ValueError as exc:
            raise LocalProtocolError(*exc.args) from None

    return parse_request_head, parse_response_head, check_fields, write_head


PURE: Final = (
    parse_request_head_pure,
    parse_response_head_pure,
    check_fields_pure,
    write_head_pure,
)
_installed = _native.installed()
COMPILED: Final = None if _installed is None else _compiled(_installed)
_parse_request_head, _parse_response_head, _check_fields, _write_head = (
    PURE if _native.core is None or COMPILED is None else COMPILED
)

# --------------------------------------------------------------------- body reading


class _BodyReader:
    """Base: a body framed by Content-Length (``remaining`` bytes)."""

    __slots__ = ("remaining",)

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining

    def read(self, buf: bytearray) -> Data | EndOfMessage | None:
        if self.remaining == 0:
            return _END
        if not buf:
            return None
        take = min(self.remaining, len(buf), MAX_PIECE)
        data = _cut(buf, take)
        self.remaining -= take
        return Data(data)

    def at_eof(self) -> EndOfMessage:
        raise ProtocolError(
            "peer closed connection without sending complete message body "
            f"({self.remaining} bytes short)"
        )


def _cut(buf: bytearray, size: int) -> bytes:
    """The first ``size`` bytes of ``buf``, removed from it (one copy when it is all)."""
    if size == len(buf):
        data = bytes(buf)
        buf.clear()
        return data
    data = bytes(buf[:size])
    del buf[:size]
    return data


class _CloseDelimitedReader(_BodyReader):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(-1)

    def read(self, buf: bytearray) -> Data | EndOfMessage | None:
        if not buf:
            return None
        return Data(_cut(buf, min(len(buf), MAX_PIECE)))

    def at_eof(self) -> EndOfMessage:
        return _END


class _ChunkedReader(_BodyReader):
    """Chunks coalesced: one Data per read of up to MAX_CHUNKS_PER_PIECE chunks. The
    buffer is walked by position and cut once per read, so a body of 1-byte chunks costs
    a regex match and a slice per chunk, not a buffer shuffle."""

    __slots__ = ("crlf", "trailer")

    def __init__(self) -> None:
        super().__init__(0)  # bytes left in the current chunk
        self.crlf = b""  # what is left of the CRLF after a chunk's data
        self.trailer = False

    def read(self, buf: bytearray) -> Data | EndOfMessage | None:
        pieces: list[bytearray] = []
        size = 0
        chunks = 0
        pos = 0
        end = len(buf)
        try:
            while True:
                if self.trailer:
                    if pieces:
                        break  # the data first; the end on the next read
                    del buf[:pos]
                    pos = 0
                    return self._read_trailer(buf)
                if self.crlf:
                    have = bytes(buf[pos : pos + len(self.crlf)])
                    if not have:
                        break
                    if have != self.crlf[: len(have)]:
                        if pieces:
                            break  # the data first; the error on the next read
                        raise ProtocolError(f"malformed chunk footer: {have!r}")
                    pos += len(have)
                    self.crlf = self.crlf[len(have) :]
                    if self.crlf:
                        break
                if size >= MAX_PIECE:
                    break
                if self.remaining == 0:
                    if chunks >= MAX_CHUNKS_PER_PIECE:
                        break
                    match = _CHUNK_HEADER.match(buf, pos)
                    if match is None:
                        line_end = buf.find(b"\r\n", pos)
                        if line_end < 0 or pieces:
                            break  # not all here yet (or: the data first)
                        line = bytes(buf[pos : line_end + 2])
                        raise ProtocolError(f"illegal chunk header: {line!r}")
                    pos = match.end()
                    chunks += 1
                    self.remaining = int(match[1], 16)
                    if self.remaining == 0:
                        self.trailer = True
                        continue
                if pos >= end:
                    break
                take = min(self.remaining, end - pos, MAX_PIECE - size)
                pieces.append(buf[pos : pos + take])
                pos += take
                size += take
                self.remaining -= take
                if self.remaining == 0:
                    self.crlf = b"\r\n"
        finally:
            if pos:
                del buf[:pos]
        if not pieces:
            return None
        return Data(b"".join(pieces))

    def _read_trailer(self, buf: bytearray) -> EndOfMessage | None:
        block = _take_head(buf)
        if block is None:
            return None
        if block:
            _check_fields(block)
        return _END

    def at_eof(self) -> EndOfMessage:
        raise ProtocolError(
            "peer closed connection without sending complete message body (incomplete chunked read)"
        )


def _take_head(buf: bytearray) -> bytes | None:
    """Cut everything up to the first empty line off ``buf``; b"" if ``buf`` starts with
    one (no lines), None if no empty line has arrived yet. The result ends in LF."""
    if buf[:1] == b"\n":
        del buf[:1]
        return b""
    if buf[:2] == b"\r\n":
        del buf[:2]
        return b""
    match = _BLANK_LINE.search(buf)
    if match is None:
        return None
    head = bytes(buf[: match.start() + 1])
    del buf[: match.end()]
    return head


# --------------------------------------------------------------------- the connection


class Connection:
    """One side of an HTTP/1.1 connection: ``client=True`` sends requests and reads
    responses. Feed received bytes to :meth:`receive_data` (``b""`` for the end), take
    events from :meth:`next_event`; :meth:`send_head`, :meth:`send_data` and
    :meth:`send_end` return the bytes to write."""

    # The head functions in use (the compiled core's when built); a subclass may pick
    # the others (the differential tests do).
    _request_head = staticmethod(_parse_request_head)
    _response_head = staticmethod(_parse_response_head)
    _write_head = staticmethod(_write_head)

    def __init__(self, *, client: bool, max_head_size: int = 16 * 1024) -> None:
        self.client = client
        self.max_head_size = max_head_size
        self._buf = bytearray()
        self._eof = False
        self.our_state = IDLE
        self.their_state = IDLE
        self._keep_alive = True
        self._proposed: set[bytes] = set()  # b"upgrade", b"connect": awaiting the answer
        self._method: bytes | None = None  # of the current request
        self._their_version: bytes | None = None
        self._reader: _BodyReader | None = None
        self._write_length: int | None = None  # Content-Length left to send
        self._write_chunked = False
        self.client_waiting_for_continue = False

    # ----------------------------------------------------------------- state

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        return not self.client and self.client_waiting_for_continue

    @property
    def trailing_data(self) -> bytes:
        """Received and not parsed (what followed a head that switched protocols)."""
        return bytes(self._buf)

    @property
    def client_state(self) -> State:
        return self.our_state if self.client else self.their_state

    @property
    def server_state(self) -> State:
        return self.their_state if self.client else self.our_state

    def _set(self, client: State | None = None, server: State | None = None) -> None:
        """Move the roles on, then the transitions one role's state causes in the other's."""
        c = self.client_state if client is None else client
        s = self.server_state if server is None else server
        while True:
            before = (c, s)
            if self._proposed and c is DONE:
                c = MIGHT_SWITCH
            if not self._proposed and c is MIGHT_SWITCH:
                c = DONE
            if not self._keep_alive:
                c = MUST_CLOSE if c is DONE else c
                s = MUST_CLOSE if s is DONE else s
            if c is MIGHT_SWITCH and s is SWITCHED:
                c = SWITCHED
            elif (c is CLOSED and s in (DONE, IDLE)) or (c is ERROR and s is DONE):
                s = MUST_CLOSE
            elif (s is CLOSED and c in (DONE, IDLE)) or (s is ERROR and c is DONE):
                c = MUST_CLOSE
            if (c, s) == before:
                break
        if self.client:
            self.our_state, self.their_state = c, s
        else:
            self.our_state, self.their_state = s, c

    def start_next_cycle(self) -> None:
        if self.our_state is not DONE or self.their_state is not DONE:
            raise LocalProtocolError(
                f"not in a reusable state ({self.our_state.value}, {self.their_state.value})"
            )
        self.our_state = self.their_state = IDLE
        self._method = None
        self._reader = None

    # ----------------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> None:
        if data:
            if self._eof:
                raise RuntimeError("received close, then received more data?")
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | _Signal:
        if self.their_state is ERROR:
            raise ProtocolError("Can't receive data when peer state is ERROR")
        try:
            event = self._next_event()
            if event is NEED_DATA:
                if len(self._buf) > self.max_head_size:
                    raise ProtocolError("Receive buffer too long", 431)
                if self._eof:
                    raise ProtocolError("peer unexpectedly closed connection")
            return event
        except ProtocolError as exc:
            if type(exc) is LocalProtocolError:
                exc = ProtocolError(str(exc), exc.status)
            self._fail_them()
            raise exc from None

    def _fail_them(self) -> None:
        if self.client:
            self._set(server=ERROR)
        else:
            self._set(client=ERROR)

    def _next_event(self) -> Event | _Signal:
        state = self.their_state
        buf = self._buf
        if state is DONE and buf:
            return PAUSED
        if state is MIGHT_SWITCH or state is SWITCHED:
            return PAUSED
        event: Event | None
        if state is SEND_BODY:
            reader = self._reader
            assert reader is not None
            event = reader.read(buf)
            if event is None and not buf and self._eof:
                event = reader.at_eof()
            if event is None:
                return NEED_DATA
            if event is _END:
                self._their_end()
            elif not self.client:
                self.client_waiting_for_continue = False
            return event
        if state is IDLE or state is SEND_RESPONSE:
            event = self._read_request() if not self.client else self._read_response()
        elif buf:  # DONE is handled above: MUST_CLOSE or CLOSED
            raise ProtocolError("Got data when expecting EOF")
        else:
            event = None
        if event is None:
            if not buf and self._eof:
                self._their_close()
                return _CLOSED
            return NEED_DATA
        return event

    def _their_close(self) -> None:
        state = self.their_state
        if state in (IDLE, DONE, MUST_CLOSE, CLOSED):
            if self.client:
                self._set(server=CLOSED)
            else:
                self._set(client=CLOSED)
        else:
            raise ProtocolError(f"can't handle the close in state {state.value}")

    def _their_end(self) -> None:
        self._reader = None
        if self.client:
            self._set(server=DONE)
        else:
            self.client_waiting_for_continue = False
            self._set(client=DONE)

    def _read_request(self) -> Request | None:
        buf = self._buf
        head = _take_head(buf)
        if head is None:
            if buf and buf[0] < 0x21:
                raise ProtocolError("illegal request line")
            return None
        method, target, version, headers, framing = self._request_head(head)
        if self.their_state is not IDLE:
            raise ProtocolError(f"can't handle a request in state {self.their_state.value}")
        self._method = method
        self._their_version = version
        if method == b"CONNECT":
            self._proposed.add(b"connect")
        if framing.upgrade:
            self._proposed.add(b"upgrade")
        if framing.close or version < b"1.1":
            self._keep_alive = False
        self.client_waiting_for_continue = framing.expect_continue and version >= b"1.1"
        if framing.chunked:
            self._reader = _ChunkedReader()
        else:
            self._reader = _BodyReader(framing.length or 0)
        self._set(client=SEND_BODY, server=SEND_RESPONSE if self.our_state is IDLE else None)
        return Request(method, target, headers, version)

    def _read_response(self) -> Response | None:
        buf = self._buf
        head = _take_head(buf)
        if head is None:
            if buf and buf[0] < 0x21:
                raise ProtocolError("illegal request line")
            return None
        version, status, reason, headers, framing = self._response_head(head)
        if status < 100:
            raise ProtocolError(f"status code out of range: {status}")
        self._their_version = version
        if status < 200:
            if status == 101:
                if b"upgrade" not in self._proposed:
                    raise ProtocolError(
                        "Received server _SWITCH_UPGRADE event without a pending proposal"
                    )
                self._set(server=SWITCHED)
            return InformationalResponse(status, headers, reason, version)
        method = self._method
        if method == b"CONNECT" and 200 <= status < 300 and b"connect" in self._proposed:
            self._set(server=SWITCHED)
            return Response(status, headers, reason, version)
        self._proposed.clear()
        if framing.close or version < b"1.1":
            self._keep_alive = False
        if status in (204, 304) or method == b"HEAD" or (method == b"CONNECT" and status < 300):
            self._reader = _BodyReader(0)
        elif framing.chunked:
            self._reader = _ChunkedReader()
        elif framing.length is not None:
            self._reader = _BodyReader(framing.length)
        else:
            self._reader = _CloseDelimitedReader()
        self._set(server=SEND_BODY)
        return Response(status, headers, reason, version)

    # ----------------------------------------------------------------- sending

    def send_head(self, head: Head) -> bytes:
        """The bytes of a request (client) or response (server) head."""
        try:
            if self.client:
                if not isinstance(head, Request):
                    raise LocalProtocolError("a client sends requests")
                return self._send_request(head)
            if not isinstance(head, Response):
                raise LocalProtocolError("a server sends responses")
            return self._send_response(head)
        except LocalProtocolError:
            self._fail_us()
            raise

    def _fail_us(self) -> None:
        if self.client:
            self._set(client=ERROR)
        else:
            self._set(server=ERROR)

    def _send_request(self, request: Request) -> bytes:
        if self.our_state is not IDLE:
            raise LocalProtocolError(f"can't send a request in state {self.our_state.value}")
        if request.http_version != b"1.1":
            raise LocalProtocolError("I only send HTTP/1.1")
        framing = _Framing()
        headers = _normalize(request.headers, framing, LocalProtocolError)
        _check_host(headers, b"1.1", LocalProtocolError)
        self._method = request.method
        if request.method == b"CONNECT":
            self._proposed.add(b"connect")
        if framing.upgrade:
            self._proposed.add(b"upgrade")
        if framing.close:
            self._keep_alive = False
        self._start_writing(framing.chunked, 0 if framing.length is None else framing.length)
        self._set(client=SEND_BODY, server=SEND_RESPONSE if self.their_state is IDLE else None)
        return self._write_head(b"%s %s HTTP/1.1\r\n" % (request.method, request.target), headers)

    def _send_response(self, response: Response) -> bytes:
        state = self.our_state
        if state is not IDLE and state is not SEND_RESPONSE:
            raise LocalProtocolError(f"can't send a response in state {state.value}")
        if response.http_version != b"1.1":
            raise LocalProtocolError("I only send HTTP/1.1")
        status = response.status_code
        reason = response.reason or _PHRASES.get(status, b"")
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        if status < 200:
            if status < 100:
                raise LocalProtocolError(f"status code out of range: {status}")
            headers = list(response.headers)
            if status == 101:
                if b"upgrade" not in self._proposed:
                    raise LocalProtocolError("101 without a pending upgrade")
                self._set(server=SWITCHED)
            elif state is IDLE:
                raise LocalProtocolError("can't send an informational response in state idle")
            self.client_waiting_for_continue = False
            return self._write_head(line, headers)
        if status > 999:
            raise LocalProtocolError(f"status code out of range: {status}")
        self.client_waiting_for_continue = False
        framing = _Framing()
        headers = _normalize(response.headers, framing, LocalProtocolError)
        method = self._method
        if method == b"CONNECT" and status < 300 and b"connect" in self._proposed:
            self._set(server=SWITCHED)
            return self._write_head(line, headers)
        self._proposed.clear()
        no_body = status in (204, 304) or (method == b"CONNECT" and status < 300)
        need_close = False
        chunked = framing.chunked
        if not no_body and (chunked or framing.length is None):
            # The body is framed by chunks, or by the close for an HTTP/1.0 peer.
            headers = [
                (k, v) for k, v in headers if k not in (b"content-length", b"transfer-encoding")
            ]
            version = self._their_version
            if version is None or version < b"1.1":
                chunked = False
                need_close = method != b"HEAD"
            else:
                chunked = True
                headers.append((b"transfer-encoding", b"chunked"))
        if framing.close:
            self._keep_alive = False
        if not self._keep_alive or need_close:
            self._keep_alive = False
            tokens: set[bytes] = set()
            for name, value in headers:
                if name == b"connection":
                    tokens.update(_comma_values(value))
            tokens.discard(b"keep-alive")
            tokens.add(b"close")
            headers = [(k, v) for k, v in headers if k != b"connection"]
            headers.append((b"connection", b", ".join(sorted(tokens))))
        if no_body or method == b"HEAD":
            self._start_writing(False, 0)
        elif chunked:
            self._start_writing(True, None)
        else:
            self._start_writing(False, framing.length)  # None: to the close
        self._set(server=SEND_BODY)
        return self._write_head(line, headers)

    def _start_writing(self, chunked: bool, length: int | None) -> None:
        self._write_chunked = chunked
        self._write_length = None if chunked else length

    def send_data(self, data: bytes) -> bytes:
        if self.our_state is not SEND_BODY:
            self._fail_us()
            raise LocalProtocolError(f"can't send data in state {self.our_state.value}")
        if self._write_chunked:
            if not data:
                return b""
            return b"%x\r\n%s\r\n" % (len(data), data)
        if self._write_length is not None:
            self._write_length -= len(data)
            if self._write_length < 0:
                self._fail_us()
                raise LocalProtocolError("Too much data for declared Content-Length")
        return data

    def send_end(self) -> bytes:
        if self.our_state is not SEND_BODY:
            self._fail_us()
            raise LocalProtocolError(f"can't end a message in state {self.our_state.value}")
        if self._write_length:
            self._fail_us()
            raise LocalProtocolError("Too little data for declared Content-Length")
        if self.client:
            self._set(client=DONE)
        else:
            self._set(server=DONE)
        return b"0\r\n\r\n" if self._write_chunked else b""

    @property
    def can_reuse(self) -> bool:
        return self.our_state is DONE and self.their_state is DONE

    @property
    def peer_finished(self) -> bool:
        return self.their_state in _FINISHED


def lower_headers(headers: Iterable[tuple[bytes | str, bytes | str]]) -> Headers:
    """Headers from elsewhere (text or bytes, any case) as this codec keeps them."""
    out: Headers = []
    for name, value in headers:
        raw_name = name.encode("ascii") if isinstance(name, str) else bytes(name)
        raw_value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        out.append((raw_name.lower(), raw_value))
    return out

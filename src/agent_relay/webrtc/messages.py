"""The JSON messages on the data channel: the reference's seven types, plus our streamed-body
extensions (``hello``, ``body``, ``body_end``, ``credit``, ``cancel``; see docs/webrtc.md).

:func:`decode_message` checks every field a peer sends (types, sizes, base64) and raises
:class:`MessageError` with a short reason; :func:`encode_message` leaves out optional fields
that are empty, as the reference does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The reference's method allow-list: anything else is answered 405.
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
WS_MSG_TYPES = frozenset({"text", "binary", "ping", "pong", "close"})
# Our extensions, offered in ``hello`` and used only once both sides named them.
# "stream": streamed answers (asked for per request); "upload": streamed request bodies paced
# by ``credit``; "cancel": either side abandons a request.
EXTENSIONS = frozenset({"stream", "upload", "cancel"})
MAX_ID = 64  # an id is a UUID in practice; bound what we keep in maps
MAX_PATH = 8192
MAX_HEADERS = 100


class MessageError(ValueError):
    """A channel message that is not well formed."""


Headers = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    id: str
    method: str
    path: str
    headers: Headers
    body: bytes = b""
    stream: bool = False  # extension: the client takes a streamed answer
    upload: bool = False  # extension: the body follows in ``body`` messages, paced by credit


@dataclass(frozen=True, slots=True)
class HttpResponse:
    id: str
    status: int
    headers: Headers
    body: bytes = b""
    stream: bool = False  # extension: the body follows in ``body`` messages


@dataclass(frozen=True, slots=True)
class WsOpen:
    conn_id: str
    path: str
    protocols: str | None = None
    headers: Headers = field(default_factory=dict)  # ours: the signature headers


@dataclass(frozen=True, slots=True)
class WsOpened:
    conn_id: str
    selected_protocol: str | None = None


@dataclass(frozen=True, slots=True)
class WsFrame:
    conn_id: str
    msg_type: str
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class WsClose:
    conn_id: str
    code: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class WsError:
    conn_id: str
    error: str


@dataclass(frozen=True, slots=True)
class Hello:
    extensions: frozenset[str]


@dataclass(frozen=True, slots=True)
class Body:
    id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    id: str
    error: str | None = None  # the sender could not finish the body


@dataclass(frozen=True, slots=True)
class Credit:
    id: str
    bytes: int  # how many more body bytes the receiver will take


@dataclass(frozen=True, slots=True)
class Cancel:
    id: str
    reason: str | None = None  # why (the host's word when its local server failed)


ChannelMessage = (
    HttpRequest
    | HttpResponse
    | WsOpen
    | WsOpened
    | WsFrame
    | WsClose
    | WsError
    | Hello
    | Body
    | BodyEnd
    | Credit
    | Cancel
)


# ------------------------------------------------------------------ decoding


def decode_message(data: bytes) -> ChannelMessage:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError("not UTF-8 JSON") from exc
    if not isinstance(obj, dict):
        raise MessageError("not a JSON object")
    kind = obj.get("type")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise MessageError("unknown message type")
    return decoder(obj)


def _str(obj: dict[str, Any], name: str, limit: int, *, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MessageError(f"{name} must be a string")
    if len(value) > limit:
        raise MessageError(f"{name} too long")
    return value


def _id(obj: dict[str, Any], name: str = "id") -> str:
    value: str = _str(obj, name, MAX_ID)
    if not value:
        raise MessageError(f"{name} is empty")
    return value


def _int(obj: dict[str, Any], name: str, low: int, high: int, *, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MessageError(f"{name} must be an integer in {low}..{high}")
    return value


def _b64(obj: dict[str, Any], name: str) -> bytes:
    value = obj.get(name)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise MessageError(f"{name} must be a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MessageError(f"{name} is not base64") from exc


def _flag(obj: dict[str, Any], name: str) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise MessageError(f"{name} must be a boolean")
    return value


def _headers(obj: dict[str, Any], name: str = "headers") -> Headers:
    value = obj.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_HEADERS:
        raise MessageError(f"{name} must be an object of at most {MAX_HEADERS} names")
    headers: Headers = {}
    for key, values in value.items():
        if not key or len(key) > 256 or not key.isascii():
            raise MessageError("bad header name")
        if not isinstance(values, list) or len(values) > MAX_HEADERS:
            raise MessageError("header values must be a list of strings")
        for one in values:
            if not isinstance(one, str) or len(one) > MAX_PATH or "\r" in one or "\n" in one:
                raise MessageError("header values must be a list of strings")
        headers.setdefault(key.lower(), []).extend(values)
    return headers


def _path(obj: dict[str, Any]) -> str:
    path: str = _str(obj, "path", MAX_PATH)
    if not path.startswith("/") or not path.isascii() or any(c in path for c in " \r\n\t"):
        raise MessageError("path must be an absolute path and query")
    return path


def _http_request(obj: dict[str, Any]) -> HttpRequest:
    method = _str(obj, "method", 16)
    if not method or not method.isascii() or not method.isalpha():
        raise MessageError("bad method")
    return HttpRequest(
        id=_id(obj),
        method=method.upper(),
        path=_path(obj),
        headers=_headers(obj),
        body=_b64(obj, "body_b64"),
        stream=_flag(obj, "stream"),
        upload=_flag(obj, "upload"),
    )


def _http_response(obj: dict[str, Any]) -> HttpResponse:
    return HttpResponse(
        id=_id(obj),
        status=_int(obj, "status", 100, 999),
        headers=_headers(obj),
        body=_b64(obj, "body_b64"),
        stream=_flag(obj, "stream"),
    )


def _ws_open(obj: dict[str, Any]) -> WsOpen:
    return WsOpen(
        conn_id=_id(obj, "conn_id"),
        path=_path(obj),
        protocols=_str(obj, "protocols", 1024, optional=True),
        headers=_headers(obj),
    )


def _ws_opened(obj: dict[str, Any]) -> WsOpened:
    return WsOpened(
        conn_id=_id(obj, "conn_id"),
        selected_protocol=_str(obj, "selected_protocol", 256, optional=True),
    )


def _ws_frame(obj: dict[str, Any]) -> WsFrame:
    msg_type = _str(obj, "msg_type", 16)
    if msg_type not in WS_MSG_TYPES:
        raise MessageError("bad msg_type")
    return WsFrame(conn_id=_id(obj, "conn_id"), msg_type=msg_type, payload=_b64(obj, "payload_b64"))


def _ws_close(obj: dict[str, Any]) -> WsClose:
    return WsClose(
        conn_id=_id(obj, "conn_id"),
        code=_int(obj, "code", 1000, 4999, optional=True),
        reason=_str(obj, "reason", 123, optional=True),
    )


def _ws_error(obj: dict[str, Any]) -> WsError:
    return WsError(conn_id=_id(obj, "conn_id"), error=_str(obj, "error", 1024))


def _hello(obj: dict[str, Any]) -> Hello:
    value = obj.get("extensions")
    if not isinstance(value, list) or len(value) > 16 or not all(isinstance(v, str) for v in value):
        raise MessageError("extensions must be a list of strings")
    # Unknown names are ignored: a newer peer may offer more than we know.
    return Hello(extensions=frozenset(value) & EXTENSIONS)


def _body(obj: dict[str, Any]) -> Body:
    return Body(id=_id(obj), data=_b64(obj, "data_b64"))


def _body_end(obj: dict[str, Any]) -> BodyEnd:
    return BodyEnd(id=_id(obj), error=_str(obj, "error", 1024, optional=True))


def _credit(obj: dict[str, Any]) -> Credit:
    return Credit(id=_id(obj), bytes=_int(obj, "bytes", 1, 1 << 30))


def _cancel(obj: dict[str, Any]) -> Cancel:
    return Cancel(id=_id(obj), reason=_str(obj, "reason", 1024, optional=True))


_DECODERS: dict[str, Callable[[dict[str, Any]], ChannelMessage]] = {
    "http_request": _http_request,
    "http_response": _http_response,
    "ws_open": _ws_open,
    "ws_opened": _ws_opened,
    "ws_frame": _ws_frame,
    "ws_close": _ws_close,
    "ws_error": _ws_error,
    "hello": _hello,
    "body": _body,
    "body_end": _body_end,
    "credit": _credit,
    "cancel": _cancel,
}


# ------------------------------------------------------------------ encoding


def _b64text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_message(message: ChannelMessage) -> bytes:
    """The message as compact UTF-8 JSON, optional fields left out when empty."""
    obj: dict[str, Any]
    match message:
        case HttpRequest():
            obj = {"type": "http_request", "id": message.id, "method": message.method}
            obj |= {"path": message.path, "headers": message.headers}
            if message.body:
                obj["body_b64"] = _b64text(message.body)
            if message.stream:
                obj["stream"] = True
            if message.upload:
                obj["upload"] = True
        case HttpResponse():
            obj = {"type": "http_response", "id": message.id, "status": message.status}
            obj["headers"] = message.headers
            if message.body:
                obj["body_b64"] = _b64text(message.body)
            if message.stream:
                obj["stream"] = True
        case WsOpen():
            obj = {"type": "ws_open", "conn_id": message.conn_id, "path": message.path}
            if message.protocols:
                obj["protocols"] = message.protocols
            if message.headers:
                obj["headers"] = message.headers
        case WsOpened():
            obj = {"type": "ws_opened", "conn_id": message.conn_id}
            if message.selected_protocol:
                obj["selected_protocol"] = message.selected_protocol
        case WsFrame():
            obj = {"type": "ws_frame", "conn_id": message.conn_id, "msg_type": message.msg_type}
            if message.payload:
                obj["payload_b64"] = _b64text(message.payload)
        case WsClose():
            obj = {"type": "ws_close", "conn_id": message.conn_id}
            if message.code is not None:
                obj["code"] = message.code
            if message.reason:
                obj["reason"] = message.reason
        case WsError():
            obj = {"type": "ws_error", "conn_id": message.conn_id, "error": message.error}
        case Hello():
            obj = {"type": "hello", "extensions": sorted(message.extensions)}
        case Body():
            obj = {"type": "body", "id": message.id, "data_b64": _b64text(message.data)}
        case BodyEnd():
            obj = {"type": "body_end", "id": message.id}
            if message.error:
                obj["error"] = message.error
        case Credit():
            obj = {"type": "credit", "id": message.id, "bytes": message.bytes}
        case Cancel():
            obj = {"type": "cancel", "id": message.id}
            if message.reason:
                obj["reason"] = message.reason
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

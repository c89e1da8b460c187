"""The data channel's sans-IO codec: chunk framing and JSON messages."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_relay.webrtc import (
    ChunkError,
    MessageError,
    Reassembler,
    SdpError,
    decode_message,
    dtls_fingerprints,
    encode_message,
    split_message,
)
from agent_relay.webrtc.limits import CHUNK_PAYLOAD, ChannelLimits
from agent_relay.webrtc.messages import (
    EXTENSIONS,
    Body,
    BodyEnd,
    Cancel,
    ChannelMessage,
    Credit,
    Hello,
    HttpRequest,
    HttpResponse,
    WsClose,
    WsError,
    WsFrame,
    WsOpen,
    WsOpened,
)


def test_chunks_carry_the_reference_headers() -> None:
    message = bytes(range(256)) * 500  # 128,000 bytes: three chunks
    chunks = list(split_message(message))
    assert [c[0] for c in chunks] == [0x06, 0x06, 0x07]
    assert [len(c) - 1 for c in chunks] == [CHUNK_PAYLOAD, CHUNK_PAYLOAD, 128_000 - 2 * 61_440]
    assert list(split_message(b"")) == [b"\x07"]
    assert list(split_message(b"x" * CHUNK_PAYLOAD)) == [b"\x07" + b"x" * CHUNK_PAYLOAD]


@given(st.binary(max_size=200_000), st.integers(1, CHUNK_PAYLOAD))
def test_reassembly_undoes_splitting(message: bytes, size: int) -> None:
    joiner = Reassembler(max_message=len(message))
    out = [joiner.feed(chunk) for chunk in split_message(message, size)]
    assert out[-1] == message
    assert all(part is None for part in out[:-1])
    assert joiner.pending == 0


def test_only_bit_zero_ends_a_message() -> None:
    joiner = Reassembler(max_message=100)
    assert joiner.feed(b"\x00ab") is None
    assert joiner.feed(b"\xffcd") == b"abcd"


def test_reassembly_refuses_what_is_too_big() -> None:
    joiner = Reassembler(max_message=10)
    assert joiner.feed(b"\x06" + b"a" * 10) is None
    with pytest.raises(ChunkError, match="over 10 bytes"):
        joiner.feed(b"\x07a")
    with pytest.raises(ChunkError, match="empty chunk"):
        Reassembler(10).feed(b"")
    with pytest.raises(ChunkError, match="payload bytes"):
        Reassembler(1 << 20).feed(b"\x06" + b"a" * (CHUNK_PAYLOAD + 1))


REFERENCE_SAMPLES: list[tuple[dict[str, object], ChannelMessage]] = [
    (
        {
            "type": "http_request",
            "id": "9b2c",
            "method": "POST",
            "path": "/api/x?y=1",
            "headers": {"Content-Type": ["application/json"], "x-vk-sig-nonce": ["n"]},
            "body_b64": "e30=",
        },
        HttpRequest(
            "9b2c",
            "POST",
            "/api/x?y=1",
            {"content-type": ["application/json"], "x-vk-sig-nonce": ["n"]},
            b"{}",
        ),
    ),
    (
        {"type": "http_response", "id": "9b2c", "status": 204, "headers": {}},
        HttpResponse("9b2c", 204, {}),
    ),
    ({"type": "ws_open", "conn_id": "c1", "path": "/api/ws"}, WsOpen("c1", "/api/ws")),
    ({"type": "ws_opened", "conn_id": "c1"}, WsOpened("c1")),
    (
        {"type": "ws_frame", "conn_id": "c1", "msg_type": "text", "payload_b64": "aGk="},
        WsFrame("c1", "text", b"hi"),
    ),
    ({"type": "ws_close", "conn_id": "c1", "code": 1000}, WsClose("c1", 1000)),
    ({"type": "ws_error", "conn_id": "c1", "error": "nope"}, WsError("c1", "nope")),
]


@pytest.mark.parametrize(("wire", "message"), REFERENCE_SAMPLES)
def test_reference_messages_decode(wire: dict[str, object], message: ChannelMessage) -> None:
    assert decode_message(json.dumps(wire).encode()) == message
    # and what we write decodes back to the same thing
    assert decode_message(encode_message(message)) == message


def test_empty_optional_fields_are_left_out() -> None:
    assert json.loads(encode_message(HttpResponse("a", 200, {"x": ["1"]}))) == {
        "type": "http_response",
        "id": "a",
        "status": 200,
        "headers": {"x": ["1"]},
    }
    assert json.loads(encode_message(WsOpened("c"))) == {"type": "ws_opened", "conn_id": "c"}


def test_hello_keeps_only_extensions_we_know() -> None:
    wire = b'{"type":"hello","extensions":["stream","teleport","upload","cancel"]}'
    assert decode_message(wire) == Hello(frozenset({"stream", "upload", "cancel"}))


def test_upload_and_cancel_on_the_wire() -> None:
    request = HttpRequest("a", "POST", "/up", {}, stream=True, upload=True)
    assert json.loads(encode_message(request)) == {
        "type": "http_request",
        "id": "a",
        "method": "POST",
        "path": "/up",
        "headers": {},
        "stream": True,
        "upload": True,
    }
    assert json.loads(encode_message(Cancel("a"))) == {"type": "cancel", "id": "a"}
    assert decode_message(b'{"type":"cancel","id":"a","reason":"gone"}') == Cancel("a", "gone")
    with pytest.raises(MessageError):
        decode_message(b'{"type":"cancel","id":""}')


@pytest.mark.parametrize(
    "wire",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"type":"nope"}',
        b'{"type":"http_request","id":"a","method":"GET","path":"relative","headers":{}}',
        b'{"type":"http_request","id":"a","method":"GE T","path":"/","headers":{}}',
        b'{"type":"http_request","id":"","method":"GET","path":"/","headers":{}}',
        b'{"type":"http_request","id":"a","method":"GET","path":"/","headers":{"x":"1"}}',
        b'{"type":"http_request","id":"a","method":"GET","path":"/","headers":{"x":["a\\nb"]}}',
        b'{"type":"http_request","id":"a","method":"GET","path":"/","body_b64":"%%%"}',
        b'{"type":"http_response","id":"a","status":true,"headers":{}}',
        b'{"type":"http_response","id":"a","status":99,"headers":{}}',
        b'{"type":"ws_frame","conn_id":"c","msg_type":"poke"}',
        b'{"type":"ws_close","conn_id":"c","code":70000}',
        b'{"type":"credit","id":"a","bytes":0}',
        b'{"type":"hello","extensions":"stream"}',
    ],
)
def test_bad_messages_are_refused(wire: bytes) -> None:
    with pytest.raises(MessageError):
        decode_message(wire)


_ids = st.text("abcdef0123456789-", min_size=1, max_size=36)
_headers = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20),
    # No lone surrogates: JSON text cannot carry them (the host's decoder never yields one).
    st.lists(
        st.text(
            st.characters(blacklist_characters="\r\n", codec="utf-8"),
            max_size=30,
        ),
        max_size=3,
    ),
    max_size=5,
)
_paths = st.text("abcdefghijklmnopqrstuvwxyz0123456789/?=&%", max_size=50).map(lambda p: "/" + p)
_messages: st.SearchStrategy[ChannelMessage] = st.one_of(
    st.builds(
        HttpRequest,
        _ids,
        st.sampled_from(["GET", "POST"]),
        _paths,
        _headers,
        st.binary(),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(HttpResponse, _ids, st.integers(100, 599), _headers, st.binary(), st.booleans()),
    st.builds(WsOpen, _ids, _paths, st.none() | st.text(min_size=1, max_size=20), _headers),
    st.builds(WsOpened, _ids, st.none() | st.text(min_size=1, max_size=20)),
    st.builds(
        WsFrame, _ids, st.sampled_from(["text", "binary", "ping", "pong", "close"]), st.binary()
    ),
    st.builds(
        WsClose,
        _ids,
        st.none() | st.integers(1000, 4999),
        st.none() | st.text(min_size=1, max_size=100),
    ),
    st.builds(WsError, _ids, st.text(max_size=100)),
    st.builds(Hello, st.sampled_from([frozenset(), frozenset({"stream"}), frozenset(EXTENSIONS)])),
    st.builds(Body, _ids, st.binary()),
    st.builds(BodyEnd, _ids, st.none() | st.text(min_size=1, max_size=50)),
    st.builds(Credit, _ids, st.integers(1, 1 << 30)),
    st.builds(Cancel, _ids, st.none() | st.text(min_size=1, max_size=50)),
)


@given(_messages)
def test_every_message_round_trips(message: ChannelMessage) -> None:
    assert decode_message(encode_message(message)) == message


@given(st.binary(max_size=500))
def test_decoding_garbage_raises_only_message_error(data: bytes) -> None:
    with contextlib.suppress(MessageError):
        decode_message(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    ),
    st.sampled_from(
        [
            "http_request",
            "http_response",
            "ws_open",
            "ws_frame",
            "ws_close",
            "hello",
            "body",
            "credit",
        ]
    ),
)
def test_decoding_any_json_raises_only_message_error(fields: object, kind: str) -> None:
    obj = dict(fields) if isinstance(fields, dict) else {"id": fields, "headers": fields}
    obj["type"] = kind
    with contextlib.suppress(MessageError):
        decode_message(json.dumps(obj).encode())


def test_fingerprints_are_read_from_the_sdp() -> None:
    sdp = "v=0\r\na=fingerprint:sha-256 ab:CD:01\r\nm=application 9 UDP/DTLS/SCTP\r\n"
    assert dtls_fingerprints(sdp) == {("sha-256", "AB:CD:01")}
    with pytest.raises(SdpError, match="no DTLS fingerprint"):
        dtls_fingerprints("v=0\r\n")


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="gather_timeout"):
        ChannelLimits(gather_timeout=6)
    with pytest.raises(ValueError, match="max_peers"):
        ChannelLimits(max_peers=0)

"""A host for relay tests: a real yamux client over a real WebSocket to the relay, serving
a few HTTP routes on each stream it accepts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json

import h11
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from agent_relay.httpwire import HttpConnection
from agent_relay.httpwire.codec import Request
from agent_relay.mux import MuxSession, MuxStream, SessionClosedError, StreamResetError
from agent_relay.transport import WebSocketByteStream
from agent_relay.transport.wsserver import handshake, open_protocol, response_bytes

CHUNK = 64 * 1024


def pattern(size: int) -> bytes:
    block = bytes(range(256)) * (CHUNK // 256)
    return (block * (size // CHUNK + 1))[:size]


class FakeHost:
    def __init__(
        self,
        relay_url: str,
        token: str,
        machine_id: str,
        name: str = "fake",
        *,
        proof: dict[str, str] | None = None,  # host key proof headers (hostproof.py)
    ) -> None:
        self.url = (
            relay_url.replace("http://", "ws://", 1)
            + f"/v1/relay/connect?machine_id={machine_id}&name={name}&agent_version=test"
        )
        self.token = token
        self.proof = proof or {}
        self.websocket: ClientConnection | None = None
        self.session: MuxSession | None = None
        self._serving: asyncio.Task[None] | None = None
        self.requests: list[Request] = []
        self.in_flight = 0

    async def connect(self) -> None:
        self.websocket = await ws_connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}", **self.proof},
            max_size=None,
            compression=None,
        )
        self.session = MuxSession(WebSocketByteStream(self.websocket), client=True)
        self._serving = asyncio.create_task(self._serve(self.session))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving

    async def _serve(self, session: MuxSession) -> None:
        async with asyncio.TaskGroup() as tg:
            while True:
                try:
                    stream = await session.accept_stream()
                except SessionClosedError:
                    return
                tg.create_task(self._handle(stream))

    async def _handle(self, stream: MuxStream) -> None:
        self.in_flight += 1
        try:
            http = HttpConnection(stream, client=False)
            request = await http.receive_request()
            if request is None:
                return
            self.requests.append(request)
            await self._route(http, stream, request)
            await stream.close()
        except (StreamResetError, SessionClosedError, ConnectionError):
            pass
        finally:
            self.in_flight -= 1

    async def _route(self, http: HttpConnection, stream: MuxStream, request: Request) -> None:
        target = request.target.decode()
        path = target.partition("?")[0]
        if path == "/echo":
            body = b"".join([c async for c in http.receive_body()])
            await respond(http, 200, body, [("x-target", target)])
        elif path == "/headers":
            await drain(http)
            headers = {k.decode(): v.decode() for k, v in request.headers}
            await respond(http, 200, json.dumps({"target": target, "headers": headers}).encode())
        elif path == "/page":
            # What a hostile host would serve to a victim: a script page setting a cookie
            # and trying to switch the relay's protections off.
            await drain(http)
            body = b"<!doctype html><script>document.title=document.cookie</script>"
            page_headers = [
                ("content-type", "text/html"),
                ("set-cookie", "stolen=1; Path=/"),
                ("x-content-type-options", "none"),
                ("cross-origin-resource-policy", "cross-origin"),
            ]
            await respond(http, 200, body, page_headers)
        elif path == "/upload":
            digest = hashlib.sha256()
            size = 0
            async for chunk in http.receive_body():
                digest.update(chunk)
                size += len(chunk)
            await respond(http, 200, f"{size} {digest.hexdigest()}".encode())
        elif path.startswith("/bytes/"):
            await drain(http)
            size = int(path.removeprefix("/bytes/"))
            await http.send(h11.Response(status_code=200, headers=[("content-length", str(size))]))
            data = pattern(size)
            for start in range(0, size, CHUNK):
                await http.send_data(data[start : start + CHUNK])
            await http.end_message()
        elif path == "/events":
            # Server-sent events: three, a moment apart, in a chunked body.
            await drain(http)
            await http.send(
                h11.Response(status_code=200, headers=[("content-type", "text/event-stream")])
            )
            for number in range(3):
                await http.send_data(f"data: tick {number}\n\n".encode())
                await asyncio.sleep(0.02)
            await http.end_message()
        elif path == "/ws":
            # A real WebSocket (sans-IO websockets) over the stream: echoes each message.
            await drain(http)
            protocol, _response = handshake("GET", target, request.headers)
            await stream.write(response_bytes(protocol))
            frames = open_protocol()
            if early := http.trailing_data():
                frames.receive_data(early)
            while True:
                for event in frames.events_received():
                    if not isinstance(event, Frame):
                        continue
                    if event.opcode is Opcode.TEXT:
                        frames.send_text(event.data)
                    elif event.opcode is Opcode.BINARY:
                        frames.send_binary(event.data)
                outgoing = frames.data_to_send()
                for out in outgoing:
                    if out:
                        await stream.write(out)
                # An empty last chunk: the close handshake is done, end the connection.
                if frames.state is State.CLOSED or (outgoing and not outgoing[-1]):
                    break
                data = await stream.read()
                if not data:
                    break
                frames.receive_data(data)
            await stream.close()
        elif path.startswith("/tiny/"):
            # A hostile host: a body of 1-byte chunks, written in large pieces, so that
            # the relay has a whole window of them buffered at once (issue 11 item 2).
            await drain(http)
            count = int(path.removeprefix("/tiny/"))
            await http.send(
                h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")])
            )
            block = b"1\r\nx\r\n" * 10_000
            for _ in range(count // 10_000):
                await stream.write(block)
            await stream.write(b"1\r\nx\r\n" * (count % 10_000) + b"0\r\n\r\n")
        elif path.startswith("/sleep/"):
            await drain(http)
            await asyncio.sleep(float(path.removeprefix("/sleep/")))
            await respond(http, 200, b"slept")
        elif path.startswith("/status/"):
            await drain(http)
            await respond(http, int(path.removeprefix("/status/")), b"")
        elif path == "/stall":
            await drain(http)
            await http.send(h11.Response(status_code=200, headers=[("content-length", "100")]))
            await http.send_data(b"x" * 10)
            await asyncio.sleep(30)
        elif path == "/reset":
            stream.reset()
        elif path == "/upgrade":
            await drain(http)
            await http.send(
                h11.InformationalResponse(
                    status_code=101, headers=[("upgrade", "echo"), ("connection", "upgrade")]
                )
            )
            # Raw bytes from here: echo them back upper-cased.
            early = http.trailing_data()
            if early:
                await stream.write(early.upper())
            while data := await stream.read():
                await stream.write(data.upper())
            await stream.close()
        else:
            await drain(http)
            await respond(http, 404, b"not here")


async def drain(http: HttpConnection) -> None:
    async for _ in http.receive_body():
        pass


async def respond(
    http: HttpConnection, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> None:
    all_headers = [("content-length", str(len(body))), *(headers or [])]
    await http.send(h11.Response(status_code=status, headers=all_headers))
    await http.send_data(body)
    await http.end_message()

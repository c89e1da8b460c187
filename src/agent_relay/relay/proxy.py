"""Forward one client request to a host over a new yamux stream, streaming both ways.

Bodies flow chunk by chunk with backpressure in both directions (a slow client slows the
host's stream through the yamux window); a ``101`` turns both hops into a raw byte pipe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..aio import reap
from ..httpwire import HttpConnection, HttpProtocolError, SocketChannel
from ..httpwire.codec import Request, Response
from ..httpwire.policy import end_to_end, has_body, header, plain_body_length
from ..httpwire.pump import PumpError, pump, receive_after_upload
from ..httpwire.splice import splice_upgraded, switching_protocols
from ..mux import (
    BufferAccount,
    GoAwayError,
    MuxError,
    MuxStream,
    SessionClosedError,
    TooManyStreamsError,
)
from .admission import Ticket
from .errors import bad_gateway, gateway_timeout, unavailable
from .isolation import Isolation
from .registry import Tunnel

# Reads from the host's stream, each one write to the client. Not larger: a client that
# stops reading keeps its last write whole in the socket layer (measured: 256 KiB
# pieces cost 200 stalled clients about 15 MiB more of the relay's memory), and at
# 64 KiB a download is still a few writes per window.
STREAM_READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    # Time for the host to start its response head, once the request body is sent.
    response_timeout: float = 600.0
    # Longest pause in a body, either direction, before the exchange is cut.
    idle_timeout: float = 300.0
    # Longest write that makes no progress (a client that stopped reading) before the
    # exchange is cut; so a stalled client cannot hold the host's stream and window.
    send_timeout: float = 60.0
    # Whole exchange; None lets server-sent events and long downloads run on.
    total_timeout: float | None = None
    max_response_head: int = 128 * 1024


@dataclass(slots=True)
class ProxyResult:
    status: int
    bytes_up: int = 0
    bytes_down: int = 0
    upgraded: bool = False


async def _open(tunnel: Tunnel, account: BufferAccount | None) -> MuxStream:
    try:
        stream = await tunnel.session.open_stream(account)
    except (GoAwayError, SessionClosedError):
        raise unavailable("host is reconnecting", retry_after=1) from None
    except TooManyStreamsError:
        raise unavailable("too many concurrent requests for this host", retry_after=1) from None
    except MuxError as exc:
        raise bad_gateway(f"cannot open a stream to the host: {exc}") from None
    # What is read from the host stays in the budget until it has gone on to the client
    # (the next read): a client that stops reading stops the host's window there.
    stream.hold_until_next_read()
    return stream


async def proxy_request(
    front: HttpConnection,
    request: Request,
    target: bytes,
    tunnel: Tunnel,
    limits: ProxyLimits,
    *,
    response_headers: list[tuple[bytes, bytes]],
    request_headers: list[tuple[bytes, bytes]] | None = None,
    isolation: Isolation = Isolation(),  # noqa: B008 - frozen, shared
    ticket: Ticket | None = None,
) -> ProxyResult:
    """Relay ``request`` (path rewritten to ``target``) and the host's answer.

    ``response_headers`` (CORS) are added to the host's response. Raises RelayError when no
    response has been sent yet; after that, failures abort the client connection. With a
    ``ticket`` (relay/admission.py), what the stream holds counts in its account, and the
    ticket learns when the answer came; the caller closes it.
    """
    stream = await _open(tunnel, None if ticket is None else ticket.account)
    upstream = HttpConnection(
        stream, client=True, max_head_size=limits.max_response_head, read_size=STREAM_READ_SIZE
    )
    result = ProxyResult(status=0)
    uploading: asyncio.Task[None] | None = None
    watching: asyncio.Task[None] | None = None
    watched = False
    try:
        async with asyncio.timeout(limits.total_timeout):
            head = Request(
                request.method,
                target,
                isolation.request_headers(
                    request.headers if request_headers is None else request_headers
                ),
            )
            if has_body(request.headers):
                await upstream.send(head)
                uploading = asyncio.create_task(_upload(front, upstream, limits, result))
            else:
                # Most requests: head and end in one write, and no task to stream a body.
                await upstream.send_message(head, b"")
                async for _ in front.receive_body():
                    pass  # only the end of the message, already here
                # A client that leaves while the host thinks must not hold its stream slot
                # until the response timeout.
                handler = asyncio.current_task()
                assert handler is not None
                channel = front.channel
                watched = isinstance(channel, SocketChannel) and channel.on_close(
                    lambda: _cancel(handler)
                )
                if not watched:
                    watching = asyncio.create_task(_cancel_when_client_leaves(front, handler))
            try:
                response = await receive_after_upload(
                    upstream.receive_response(), uploading, limits.response_timeout
                )
            except TimeoutError:
                raise gateway_timeout("host did not answer in time") from None
            except HttpProtocolError as exc:
                raise bad_gateway(f"bad response from host: {exc}") from None
            except MuxError:
                if uploading and uploading.done() and uploading.exception() is not None:
                    raise bad_gateway("request body could not be forwarded") from None
                raise bad_gateway("host closed the stream without a response") from None
            if ticket is not None:
                ticket.answered()
            # Ended, not only told to end: the front channel is read next (a body, a
            # pipe, the next request) and must have one reader at a time.
            if watched:
                _stop_watching(front)
                watched = False
            await reap(watching)
            watching = None
            result.status = response.status_code
            headers = [
                (k, v)
                for k, v in end_to_end(response.headers)
                # The relay answers CORS itself; the host's own would be duplicates.
                if not (response_headers and k.startswith(b"access-control-"))
            ]
            if response.status_code == 101:
                result.upgraded = True
                # A host's cookies never reach the relay's origin, upgrades included.
                headers = [(k, v) for k, v in headers if k != b"set-cookie"]
                await splice_upgraded(front, upstream, switching_protocols(response, headers))
                return result
            cors = response_headers
            signed = header(headers, b"x-vk-resp-headers")
            if cors and signed:
                # A page on another origin reads only exposed headers: the ones the host
                # signed too, or the SDK could not check them (a second line adds to the list).
                cors = [*cors, (b"access-control-expose-headers", signed)]
            answer = Response(
                response.status_code,
                isolation.response_headers(headers) + cors,
                response.reason,
            )
            if upstream.body_ready():
                front.start_message(answer)  # out with the body, in one write
            else:
                await front.send(answer)  # the body may take a while (an event stream)
            length = plain_body_length(request.method, response.status_code, response.headers)
            await _download(front, upstream, limits, result, length)
            if uploading is None:
                pass
            elif not front.request_done:
                # The host answered without reading the whole body; the upload is moot.
                uploading.cancel()
            else:
                await uploading
        if stream.at_eof:
            await stream.close()  # both sides done: a clean FIN
        else:
            # The exchange is complete; a host that keeps its side open must not hold a
            # stream slot (and its window) until it gets round to closing.
            stream.reset()
        return result
    except TimeoutError:
        # The total timeout (the others are handled where they fire).
        stream.reset()
        if result.status:
            raise ConnectionAbortedError("exchange exceeded the total timeout") from None
        raise gateway_timeout("exchange exceeded the total timeout") from None
    except BaseException:
        stream.reset()
        raise
    finally:
        if watched:
            _stop_watching(front)
        if watching is not None:
            watching.cancel()
        # Not suppress(BaseException) around the await: that would swallow this
        # handler's own cancellation along with the upload's.
        await reap(uploading)


def _cancel(handler: asyncio.Task[object]) -> None:
    handler.cancel()


def _stop_watching(front: HttpConnection) -> None:
    channel = front.channel
    assert isinstance(channel, SocketChannel)
    channel.on_close(None)


async def _cancel_when_client_leaves(front: HttpConnection, handler: asyncio.Task[object]) -> None:
    while True:
        data = await front.channel.read()
        if not data:
            handler.cancel()
            return
        front.keep_received(data)  # a pipelined next request: the codec keeps it


async def _upload(
    front: HttpConnection, upstream: HttpConnection, limits: ProxyLimits, result: ProxyResult
) -> None:
    async def send(chunk: bytes) -> None:
        # Counted as it goes: a host that answers early cancels the rest of the upload.
        result.bytes_up += len(chunk)
        await upstream.send_data(chunk)

    await pump(
        front.receive_body(),
        send,
        idle_timeout=limits.idle_timeout,
        send_timeout=limits.send_timeout,
    )
    await upstream.end_message()


async def _download(
    front: HttpConnection,
    upstream: HttpConnection,
    limits: ProxyLimits,
    result: ProxyResult,
    length: int | None,
) -> None:
    # A body of known length is read past the codec (fewer copies): the stream serves
    # this one exchange, so nothing is lost by the codec not seeing its end.
    body = upstream.receive_body() if length is None else upstream.receive_long_body(length)
    try:
        result.bytes_down = await pump(
            body,
            front.send_data,
            idle_timeout=limits.idle_timeout,
            send_timeout=limits.send_timeout,
            ready=upstream.body_ready,
        )
    except PumpError as exc:
        # Headers are out: all we can do is cut the client connection (and reset the
        # host's stream, which frees its slot and window).
        raise ConnectionAbortedError(f"response body: {exc}") from None
    await front.end_message()

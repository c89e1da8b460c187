"""Forward one client request to a host over a new yamux stream, streaming both ways.

Bodies flow chunk by chunk with backpressure in both directions (a slow client slows the
host's stream through the yamux window); a ``101`` turns both hops into a raw byte pipe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import h11

from ..aio import reap
from ..httpwire import HttpConnection, HttpProtocolError, splice
from ..httpwire.policy import end_to_end, has_body, plain_body_length
from ..mux import GoAwayError, MuxError, MuxStream, SessionClosedError, TooManyStreamsError
from .errors import bad_gateway, gateway_timeout, unavailable
from .registry import Tunnel

# Reads from the host's stream: as large as a yamux frame, so that a download goes to the
# client in a few large writes rather than many small ones.
STREAM_READ_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    # Time for the host to start its response head.
    response_timeout: float = 60.0
    # Longest pause in a body, either direction, before the exchange is cut.
    idle_timeout: float = 300.0
    # Whole exchange; None lets server-sent events and long downloads run on.
    total_timeout: float | None = None
    max_response_head: int = 64 * 1024


@dataclass(slots=True)
class ProxyResult:
    status: int
    bytes_up: int = 0
    bytes_down: int = 0
    upgraded: bool = False


async def _open(tunnel: Tunnel) -> MuxStream:
    try:
        return await tunnel.session.open_stream()
    except (GoAwayError, SessionClosedError):
        raise unavailable("host is reconnecting", retry_after=1) from None
    except TooManyStreamsError:
        raise unavailable("too many concurrent requests for this host", retry_after=1) from None
    except MuxError as exc:
        raise bad_gateway(f"cannot open a stream to the host: {exc}") from None


async def proxy_request(
    front: HttpConnection,
    request: h11.Request,
    target: bytes,
    tunnel: Tunnel,
    limits: ProxyLimits,
    *,
    response_headers: list[tuple[bytes, bytes]],
) -> ProxyResult:
    """Relay ``request`` (path rewritten to ``target``) and the host's answer.

    ``response_headers`` (CORS) are added to the host's response. Raises RelayError when no
    response has been sent yet; after that, failures abort the client connection.
    """
    stream = await _open(tunnel)
    upstream = HttpConnection(
        stream, client=True, max_head_size=limits.max_response_head, read_size=STREAM_READ_SIZE
    )
    result = ProxyResult(status=0)
    uploading: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(limits.total_timeout):
            head = h11.Request(method=request.method, target=target, headers=request.headers)
            if has_body(request.headers):
                await upstream.send(head)
                uploading = asyncio.create_task(_upload(front, upstream, limits, result))
            else:
                # Most requests: head and end in one write, and no task to stream a body.
                await upstream.send_message(head, b"")
                async for _ in front.receive_body():
                    pass  # only the end of the message, already here
            try:
                async with asyncio.timeout(limits.response_timeout):
                    response = await upstream.receive_response()
            except TimeoutError:
                raise gateway_timeout("host did not answer in time") from None
            except HttpProtocolError as exc:
                raise bad_gateway(f"bad response from host: {exc}") from None
            except MuxError:
                if uploading and uploading.done() and uploading.exception() is not None:
                    raise bad_gateway("request body could not be forwarded") from None
                raise bad_gateway("host closed the stream without a response") from None
            result.status = response.status_code
            headers = [
                (k, v)
                for k, v in end_to_end(response.headers)
                # The relay answers CORS itself; the host's own would be duplicates.
                if not (response_headers and k.startswith(b"access-control-"))
            ]
            if response.status_code == 101:
                upgrade = [(k, v) for k, v in response.headers if k in (b"upgrade", b"connection")]
                await _splice_upgrade(front, upstream, stream, headers + upgrade, result)
                return result
            answer = h11.Response(
                status_code=response.status_code,
                headers=headers + response_headers,
                reason=response.reason,
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
        # Not suppress(BaseException) around the await: that would swallow this
        # handler's own cancellation along with the upload's.
        await reap(uploading)


async def _upload(
    front: HttpConnection, upstream: HttpConnection, limits: ProxyLimits, result: ProxyResult
) -> None:
    body = front.receive_body()
    while True:
        async with asyncio.timeout(limits.idle_timeout):
            chunk = await anext(body, None)
        if chunk is None:
            break
        result.bytes_up += len(chunk)
        await upstream.send_data(chunk)
    await upstream.end_message()


async def _download(
    front: HttpConnection,
    upstream: HttpConnection,
    limits: ProxyLimits,
    result: ProxyResult,
    length: int | None,
) -> None:
    # A body of known length is read past h11 (fewer copies): the stream serves this one
    # exchange, so nothing is lost by h11 not seeing its end.
    body = upstream.receive_body() if length is None else upstream.receive_long_body(length)
    while True:
        try:
            if upstream.body_ready():  # no wait: no timer to set
                chunk = await anext(body, None)
            else:
                async with asyncio.timeout(limits.idle_timeout):
                    chunk = await anext(body, None)
        except (HttpProtocolError, MuxError, TimeoutError) as exc:
            # Headers are out: all we can do is cut the client connection.
            raise ConnectionAbortedError(f"host response broke off: {exc!r}") from None
        if chunk is None:
            break
        result.bytes_down += len(chunk)
        await front.send_data(chunk)
    await front.end_message()


async def _splice_upgrade(
    front: HttpConnection,
    upstream: HttpConnection,
    stream: MuxStream,
    headers: list[tuple[bytes, bytes]],
    result: ProxyResult,
) -> None:
    result.upgraded = True
    await front.send(h11.InformationalResponse(status_code=101, headers=headers))
    early_from_client = front.trailing_data()
    early_from_host = upstream.trailing_data()
    if early_from_client:
        await stream.write(early_from_client)
    if early_from_host:
        await front.channel.write(early_from_host)
    await splice(front.channel, stream)

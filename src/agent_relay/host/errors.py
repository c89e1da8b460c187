"""The one place where a failed relayed request becomes an HTTP status and a JSON body."""

from __future__ import annotations

from ..errors import HttpError
from ..httpwire.codec import Response


class ForwardError(HttpError):
    """A relayed request failed before any of its response went out; it is answered with
    ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        extra = [("retry-after", str(retry_after))] if retry_after is not None else []
        super().__init__(status, message, headers=extra)
        self.retry_after = retry_after


def bad_request(status: int, message: str) -> ForwardError:
    """The relay sent something that is not a request we can serve (400, 408, 431…)."""
    return ForwardError(status, message)


def bad_gateway(message: str) -> ForwardError:
    """The local server refused, reset, timed out or answered nonsense."""
    return ForwardError(502, message)


def busy(message: str) -> ForwardError:
    return ForwardError(503, message, retry_after=1)


def error_response(error: ForwardError) -> tuple[Response, bytes]:
    body = error.body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers += [(k.encode(), v.encode()) for k, v in error.headers]
    return Response(error.status, headers), body

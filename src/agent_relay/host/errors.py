"""The one place where a failed relayed request becomes an HTTP status and a JSON body."""

from __future__ import annotations

import json

import h11


class ForwardError(Exception):
    """A relayed request failed before any of its response went out; it is answered with
    ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def bad_request(status: int, message: str) -> ForwardError:
    """The relay sent something that is not a request we can serve (400, 408, 431…)."""
    return ForwardError(status, message)


def bad_gateway(message: str) -> ForwardError:
    """The local server refused, reset, timed out or answered nonsense."""
    return ForwardError(502, message)


def busy(message: str) -> ForwardError:
    return ForwardError(503, message, retry_after=1)


def error_response(error: ForwardError) -> tuple[h11.Response, bytes]:
    body = json.dumps({"error": error.message}, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if error.retry_after is not None:
        headers.append((b"retry-after", str(error.retry_after).encode()))
    return h11.Response(status_code=error.status, headers=headers), body

"""Errors that end a request with an HTTP status and a ``{"error": …}`` body."""

from __future__ import annotations

from ..errors import HttpError


class RelayError(HttpError):
    """The relay's own refusal of a request (rendered by ``RelayApp.on_error``)."""

    def __init__(
        self, status: int, message: str, *, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(status, message, headers=headers or [])


def bad_request(message: str) -> RelayError:
    return RelayError(400, message)


def unauthorized(message: str) -> RelayError:
    return RelayError(401, message)


def forbidden(message: str) -> RelayError:
    return RelayError(403, message)


def not_found(message: str) -> RelayError:
    return RelayError(404, message)


def bad_gateway(message: str) -> RelayError:
    return RelayError(502, message)


def unavailable(message: str, retry_after: int | None = None) -> RelayError:
    headers = [("retry-after", str(retry_after))] if retry_after is not None else []
    return RelayError(503, message, headers=headers)


def gateway_timeout(message: str) -> RelayError:
    return RelayError(504, message)

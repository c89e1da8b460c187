"""The root of the project's error tree.

Every error raised on purpose derives from :class:`AgentRelayError`, so a caller (the
CLI above all) catches one class to turn any of them into a one-line message. Errors that
end an HTTP exchange derive from :class:`HttpError`, which carries everything one
renderer per server needs: status, message, a machine-readable reason and extra headers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable


class AgentRelayError(Exception):
    """Base of every error agent-relay raises on purpose; its text is for people."""


class HttpError(AgentRelayError):
    """An exchange that ends with ``status`` and a short JSON body.

    ``reason`` is for programs (a client refreshes on ``session_expired``…); ``headers``
    are extra response headers such as ``retry-after``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = list(headers)

    def body(self) -> bytes:
        """``{"error": message}``, plus ``reason`` when there is one."""
        payload: dict[str, str] = {"error": self.message}
        if self.reason is not None:
            payload["reason"] = self.reason
        return json.dumps(payload, separators=(",", ":")).encode()

"""How the trust layer says no: an HTTP status, a machine-readable reason and a sentence."""

from __future__ import annotations

import json

from ..errors import HttpError


class TrustError(HttpError):
    """A request the trust layer refuses. ``reason`` is for programs (a client refreshes its
    session on ``session_expired``, corrects its clock on ``clock_skew``…), ``message``
    for people."""

    def __init__(
        self, status: int, reason: str, message: str, *, retry_after: int | None = None
    ) -> None:
        extra = [("retry-after", str(retry_after))] if retry_after is not None else []
        super().__init__(status, message, reason=reason, headers=extra)
        self.reason: str = reason
        self.retry_after = retry_after

    def body(self) -> bytes:
        """The reference host's error envelope plus our ``reason``."""
        return json.dumps(
            {
                "success": False,
                "error": self.message,
                "reason": self.reason,
                "message": self.message,
            },
            separators=(",", ":"),
        ).encode()


def unauthorized(reason: str, message: str) -> TrustError:
    return TrustError(401, reason, message)


def client_revoked() -> TrustError:
    return unauthorized("client_revoked", "this client was revoked by the host owner")


def success_body(data: object) -> bytes:
    return json.dumps(
        {"success": True, "data": data, "message": None}, separators=(",", ":")
    ).encode()

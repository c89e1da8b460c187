"""What can go wrong on the client side, as a small tree of exceptions so callers (and
the CLI) can tell a forged answer from a refused one from a network failure."""

from __future__ import annotations

from ..errors import AgentRelayError


class ClientError(AgentRelayError):
    """Base of every error the client SDK raises on purpose."""


class VerificationError(ClientError):
    """An answer did not carry a valid host signature: it was forged, altered, replayed,
    reordered or cut short on the way. Its data is never handed out."""


class PairingError(ClientError):
    """Pairing failed: a wrong or expired code, or a host that could not prove it knows
    the code."""


class NotPairedError(ClientError):
    """No stored credentials for this relay and host: run ``agent-relay pair`` first."""


class RelayRefusedError(ClientError):
    """The relay itself refused (bad token, no access, host offline, …)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"relay answered {status}: {message}")
        self.status = status
        self.message = message


class HostRefusedError(ClientError):
    """The host refused a signed request (401 with a machine-readable reason)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"host refused the request ({status} {reason}): {message}")
        self.status = status
        self.reason = reason
        self.message = message

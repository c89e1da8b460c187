"""The client SDK: pair with a host through a relay, then make signed requests and
WebSockets whose answers are checked against the host's key (the relay cannot forge,
alter, replay or reorder them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .client import ClientLimits, RelayClient, SignedWebSocket, VerifiedResponse
    from .errors import (
        ClientError,
        HostRefusedError,
        NotPairedError,
        PairingError,
        RelayRefusedError,
        VerificationError,
    )
    from .frames import Frame
    from .keystore import KeyStore, Pairing

# Loaded on first use, so importing one submodule does not load the whole package.
_EXPORTS = {
    "ClientError": ".errors",
    "ClientLimits": ".client",
    "Frame": ".frames",
    "HostRefusedError": ".errors",
    "KeyStore": ".keystore",
    "NotPairedError": ".errors",
    "Pairing": ".keystore",
    "PairingError": ".errors",
    "RelayClient": ".client",
    "RelayRefusedError": ".errors",
    "SignedWebSocket": ".client",
    "VerificationError": ".errors",
    "VerifiedResponse": ".client",
}

__all__ = [
    "ClientError",
    "ClientLimits",
    "Frame",
    "HostRefusedError",
    "KeyStore",
    "NotPairedError",
    "Pairing",
    "PairingError",
    "RelayClient",
    "RelayRefusedError",
    "SignedWebSocket",
    "VerificationError",
    "VerifiedResponse",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

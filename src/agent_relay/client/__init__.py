"""The client SDK: pair with a host through a relay, then make signed requests and
WebSockets whose answers are checked against the host's key (the relay cannot forge,
alter, replay or reorder them)."""

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

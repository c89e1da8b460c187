"""The trust layer between a client and a host: pairing, keys, signing sessions and the
signatures that keep the relay from forging or reading what it forwards.

Host side: :class:`TrustHost` (the core: pairing routes, sessions, checks, signing),
:func:`protect` (ASGI middleware) and the connector's built-in use (``host/forward.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .asgi import TrustMiddleware, protect
    from .errors import TrustError
    from .frames import FrameCodec, FrameError
    from .host import API_PREFIX, TrustHost
    from .limits import TrustLimits
    from .sessions import RequestVerifier, SessionTable, VerifiedRequest
    from .signing import BodyMode, ResponseSigner, StreamSigner
    from .store import EnrollmentCode, TrustedClient

# Loaded on first use, so importing one submodule does not load the whole package.
_EXPORTS = {
    "API_PREFIX": ".host",
    "BodyMode": ".signing",
    "EnrollmentCode": ".store",
    "FrameCodec": ".frames",
    "FrameError": ".frames",
    "RequestVerifier": ".sessions",
    "ResponseSigner": ".signing",
    "SessionTable": ".sessions",
    "StreamSigner": ".signing",
    "TrustError": ".errors",
    "TrustHost": ".host",
    "TrustLimits": ".limits",
    "TrustMiddleware": ".asgi",
    "TrustedClient": ".store",
    "VerifiedRequest": ".sessions",
    "protect": ".asgi",
}

__all__ = [
    "API_PREFIX",
    "BodyMode",
    "EnrollmentCode",
    "FrameCodec",
    "FrameError",
    "RequestVerifier",
    "ResponseSigner",
    "SessionTable",
    "StreamSigner",
    "TrustError",
    "TrustHost",
    "TrustLimits",
    "TrustMiddleware",
    "TrustedClient",
    "VerifiedRequest",
    "protect",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

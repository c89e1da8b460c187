"""The trust layer between a client and a host: pairing, keys, signing sessions and the
signatures that keep the relay from forging or reading what it forwards.

Host side: :class:`TrustHost` (the core: pairing routes, sessions, checks, signing),
:func:`protect` (ASGI middleware) and the connector's built-in use (``host/forward.py``).
"""

from .asgi import TrustMiddleware, protect
from .errors import TrustError
from .frames import FrameCodec, FrameError
from .host import API_PREFIX, TrustHost
from .limits import TrustLimits
from .sessions import RequestVerifier, SessionTable, VerifiedRequest
from .signing import BodyMode, ResponseSigner, StreamSigner
from .store import EnrollmentCode, TrustedClient

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

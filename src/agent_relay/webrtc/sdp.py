"""What an SDP offer or answer says about its sender's DTLS certificate.

The signed answer binds the host's DTLS fingerprint to the host key; the client compares the
fingerprint the answer names with the one the DTLS handshake then presents (aiortc checks
that itself against the remote description), so the answer must be verified first and must
name exactly the fingerprints we expect. This module only reads them.
"""

from __future__ import annotations

import re

MAX_SDP = 64 * 1024
_FINGERPRINT = re.compile(r"^a=fingerprint:(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)\s*$")


class SdpError(ValueError):
    """An SDP we will not use."""


def dtls_fingerprints(sdp: str) -> frozenset[tuple[str, str]]:
    """The ``(algorithm, HEX:FINGERPRINT)`` pairs of every ``a=fingerprint`` line."""
    if len(sdp) > MAX_SDP:
        raise SdpError("SDP too long")
    found: set[tuple[str, str]] = set()
    for line in sdp.splitlines():
        match = _FINGERPRINT.match(line)
        if match:
            found.add((match.group(1).lower(), match.group(2).upper()))
    if not found:
        raise SdpError("SDP names no DTLS fingerprint")
    return frozenset(found)

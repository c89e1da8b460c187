"""What the relay changes in every proxied exchange so that a host's content can never act
on the relay's origin (where the remote web UI and its keys live).

Answers get ``Content-Security-Policy: sandbox`` (a browser that opens one treats it as
an opaque origin: no scripts with the relay's storage, no cookies), ``nosniff`` (no
guessing a script out of ``text/plain``) and ``Cross-Origin-Resource-Policy`` (another
site cannot embed them); a host's ``Set-Cookie`` is dropped, and so is the client's
``Cookie``: the relay path authenticates with the session id in the path and signatures,
never cookies, so a cookie of the relay's origin is only ever someone else's to steal.
docs/security.md says why and which of these a deployment may turn off.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Headers = Sequence[tuple[bytes, bytes]]

# Replaced by the relay's own value: a host must not weaken them.
_OWNED = frozenset({b"x-content-type-options", b"cross-origin-resource-policy"})
_CORP_VALUES = frozenset({"same-origin", "same-site", "cross-origin"})


@dataclass(frozen=True, slots=True)
class Isolation:
    """``sandbox=False`` is for a relay origin that serves nothing but one trusted host's
    own pages (no web UI, see RelayConfig.web_ui); everything else always holds."""

    sandbox: bool = True
    resource_policy: str = "same-origin"

    def __post_init__(self) -> None:
        if self.resource_policy not in _CORP_VALUES:
            raise ValueError(
                f"Cross-Origin-Resource-Policy must be one of {sorted(_CORP_VALUES)}, "
                f"got {self.resource_policy!r}"
            )

    def request_headers(self, headers: Headers) -> list[tuple[bytes, bytes]]:
        """The client's headers as they go to the host: without ``Cookie``."""
        return [(k, v) for k, v in headers if k != b"cookie"]

    def response_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The host's headers as they go to the client (the codec gives names in lower case)."""
        kept = [(k, v) for k, v in headers if k != b"set-cookie" and k not in _OWNED]
        kept.append((b"x-content-type-options", b"nosniff"))
        kept.append((b"cross-origin-resource-policy", self.resource_policy.encode()))
        if self.sandbox:
            # Added beside any policy of the host's: a browser enforces all of them.
            kept.append((b"content-security-policy", b"sandbox"))
        return kept

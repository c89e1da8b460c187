"""The relay's base URL (``https://relay.example[:port][/prefix]``), parsed once, the one
way the connector, the client, the doctor and the host-id lookup read it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# A WebSocket URL names the same relay: ws is http's, wss https's.
_SCHEMES = {"https": "https", "http": "http", "wss": "https", "ws": "http"}
# What people paste after the base URL: the API paths under it, dropped (else every call
# goes to …/v1/v1/relay/connect and answers 404).
_API_SUFFIXES = ("/v1/relay/connect", "/v1/relay", "/v1")


@dataclass(frozen=True, slots=True)
class RelayUrl:
    scheme: str  # http or https
    host: str  # lower case, IPv6 without brackets
    port: int
    netloc: str  # as written (lower case), port included when given
    prefix: str  # the path the relay is mounted under, no trailing slash

    @classmethod
    def parse(cls, text: str) -> RelayUrl:
        """ValueError unless ``text`` is ``http(s)://HOST[:PORT][/PATH]`` (or ws(s)://…)
        without query, fragment or credentials. An API path after the base (``/v1``,
        ``/v1/relay``, ``/v1/relay/connect``) is dropped."""
        parts = urlsplit(text.strip())
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.hostname:
            raise ValueError(f"the relay URL must be http(s)://HOST[:PORT][/PATH], got {text!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"the relay URL must not have a query or fragment: {text!r}")
        if parts.username or parts.password:
            raise ValueError("the relay URL must not carry credentials; use a token option")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"bad port in the relay URL {text!r}") from None
        prefix = parts.path.rstrip("/")
        for suffix in _API_SUFFIXES:
            if prefix.endswith(suffix):
                prefix = prefix.removesuffix(suffix)
                break
        return cls(scheme, parts.hostname.lower(), port, parts.netloc.lower(), prefix)

    @property
    def base(self) -> str:
        """The normalized base URL, as stored and compared."""
        return f"{self.scheme}://{self.netloc}{self.prefix}"

    @property
    def origin(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}"

    def http(self, path: str) -> str:
        """The http(s) URL of ``path`` under the relay's prefix."""
        return self.base + path

    def ws(self, path: str) -> str:
        """The ws(s) URL of ``path`` under the relay's prefix."""
        return ws_url(self.http(path))


def ws_url(http_url: str) -> str:
    """An http(s) URL as the WebSocket URL of the same place."""
    if http_url.startswith("https://"):
        return "wss://" + http_url.removeprefix("https://")
    return "ws://" + http_url.removeprefix("http://")

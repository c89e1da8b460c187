"""Links into the remote web UI. What they carry (a token, a pairing code) goes in the
fragment, which a browser never sends to a server; the page reads it and clears the
address bar."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

_CONNECT_PATH = "/v1/relay/connect"


class LinkError(ValueError):
    """A URL the web UI cannot be reached at."""


def ui_base(relay_url: str) -> str:
    """The UI's address from a relay URL as users and connectors write it: ``ws(s)://``
    becomes ``http(s)://``, a connect path, query and fragment are dropped, and the path
    ends in ``/``."""
    parts = urlsplit(relay_url.strip())
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.hostname:
        raise LinkError(f"a relay URL is http(s)://HOST[:PORT][/PATH], got {relay_url!r}")
    path = parts.path.removesuffix(_CONNECT_PATH).rstrip("/") + "/"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def sign_in_link(relay_url: str, token: str) -> str:
    return f"{ui_base(relay_url)}#token={quote(token, safe='')}"


def pair_link(ui_url: str, host_id: str, code: str) -> str:
    """Opens the UI's pair screen with the host and the code filled in."""
    return f"{ui_base(ui_url)}#pair={quote(host_id, safe='')}&code={quote(code, safe='')}"


def sign_in_block(relay_url: str, token: str) -> str:
    """What ``tokens issue --link`` prints after the token: the link and its QR code."""
    from .qr import terminal_qr

    link = sign_in_link(relay_url, token)
    return f"{link}\n{terminal_qr(link)}open the link (or scan the code) to sign in to the web UI"

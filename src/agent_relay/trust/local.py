"""Who may use a host's local pages and local pairing routes: they have no login (whoever
reaches them owns the host), so they answer only requests addressed to this machine by
name (a DNS-rebinding page on another name is refused) and only what the owner's own
browser tab or a tool sent (a request another site made the browser send is refused).
The one rule for the connector's local page (host/status.py) and ``protect()``'s local
pairing routes (admission.py)."""

from __future__ import annotations

from collections.abc import Mapping

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def host_name(host: str) -> str:
    """The name in a Host header, without its port, lower case."""
    name = host.strip().lower()
    # "[::1]:8080" or "localhost:8080"
    return name.partition("]")[0] + "]" if name.startswith("[") else name.partition(":")[0]


def host_allowed(host: str | None, allowed: frozenset[str] = LOOPBACK_NAMES) -> bool:
    """The Host header names this machine: loopback or a name in ``allowed``, any port."""
    if host is None:
        return False
    name = host_name(host)
    return name in allowed or name in LOOPBACK_NAMES or name.startswith("127.")


def cross_site(headers: Mapping[str, str]) -> bool:
    """A request another origin made a browser send (``headers``: lower-case names).
    Tools that send neither ``Sec-Fetch-Site`` nor ``Origin`` (curl, the CLI) are not
    browsers and pass; so does the page's own tab (same origin) and a typed URL."""
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    host = headers.get("host")
    return host is None or origin.strip() not in (f"http://{host}", f"https://{host}")

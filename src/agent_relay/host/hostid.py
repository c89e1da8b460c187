"""The relay does not tell a host its id when it connects. Our relay lists the caller's
hosts at ``GET /v1/hosts``; this finds ours there by machine id, best effort (a relay
without that route, or behind a login page, just leaves the id unknown)."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import urllib.request
from typing import Any

from .. import __version__
from ..baseurl import RelayUrl

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def hosts_url(relay_base: str) -> str:
    return RelayUrl.parse(relay_base).http("/v1/hosts")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect here is a login proxy in front of /v1/hosts: following it would hand
    our bearer token to the login page's host. Stop instead (an HTTPError)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


async def look_up_host_id(
    relay_base: str,
    token: str,
    machine_id: str,
    *,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> str | None:
    """Our host's id at the relay, or None when it cannot be found out."""
    url = hosts_url(relay_base)

    def fetch() -> bytes:
        request = urllib.request.Request(  # noqa: S310 - the scheme is http(s), checked above
            url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"agent-relay/{__version__}",
            },
        )
        handlers: list[urllib.request.BaseHandler] = [_RefuseRedirects()]
        if tls is not None:
            handlers.append(urllib.request.HTTPSHandler(context=tls))
        opener = urllib.request.build_opener(*handlers)
        with opener.open(request, timeout=timeout) as response:
            return bytes(response.read(MAX_BODY))

    try:
        body = await asyncio.to_thread(fetch)
        payload: Any = json.loads(body)
    except (OSError, ValueError) as exc:
        log.debug("host id lookup at %s failed: %s", url, exc)
        return None
    hosts = payload.get("hosts") if isinstance(payload, dict) else None
    for host in hosts if isinstance(hosts, list) else []:
        if (
            isinstance(host, dict)
            and host.get("machine_id") == machine_id
            and host.get("owned", True) is not False
            and isinstance(host.get("id"), str)
        ):
            return str(host["id"])
    return None

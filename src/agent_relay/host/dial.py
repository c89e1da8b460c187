"""One attempt to open the control channel: the relay's connect URL, the WebSocket
handshake with the bearer token, and a plain account of why an attempt failed."""

from __future__ import annotations

import json
import ssl
from urllib.parse import quote, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException

from .. import __version__
from ..baseurl import RelayUrl
from ..errors import AgentRelayError
from ..tls import tls_context

CONNECT_PATH = "/v1/relay/connect"
# Largest WebSocket message we accept from the relay: a yamux frame of the biggest
# window (16 MiB) and its header, as the relay's own limit.
MAX_MESSAGE = 16 * 1024 * 1024 + 4096
# A close waits this long for the relay's close reply: a relay that stopped answering
# (keepalive failed) is given up in seconds, not websockets' default 10 s.
CLOSE_TIMEOUT = 2.0
MAX_RETRY_AFTER = 300


def control_channel_url(relay_base: str) -> str:
    """The relay base URL (``https://relay.example[/prefix]``) as its connect URL:
    https→wss, http→ws, trailing slashes stripped, ``/v1/relay/connect`` appended."""
    return RelayUrl.parse(relay_base).ws(CONNECT_PATH)


def connect_url(relay_base: str, *, machine_id: str, name: str, agent_version: str) -> str:
    query = urlencode(
        {"machine_id": machine_id, "name": name, "agent_version": agent_version},
        quote_via=quote,
    )
    return f"{control_channel_url(relay_base)}?{query}"


class DialError(AgentRelayError):
    """An attempt failed. ``status`` is the relay's HTTP answer when it gave one;
    ``refused`` means it rejected our credentials (401 or 403); ``retry_after`` is the
    relay's ``Retry-After`` in seconds (a busy or restarting relay says when to come back)."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.nothing_listens = False  # connection refused: the relay is (re)starting

    @property
    def refused(self) -> bool:
        return self.status in (401, 403)


async def dial(
    url: str,
    token: str,
    *,
    open_timeout: float,
    tls: ssl.SSLContext | None = None,
    extra_headers: dict[str, str] | None = None,
    close_timeout: float = CLOSE_TIMEOUT,
) -> ClientConnection:
    """Open the control channel's WebSocket; raise :class:`DialError` when it fails.
    ``tls`` (for ``wss://``) defaults to :func:`tls_context` with no extra CA."""
    if url.startswith("wss:") and tls is None:
        tls = tls_context()
    try:
        return await connect(
            url,
            ssl=tls if url.startswith("wss:") else None,
            additional_headers={"Authorization": f"Bearer {token}", **(extra_headers or {})},
            open_timeout=open_timeout,
            # yamux pings the session itself; two keepalives would only add traffic.
            ping_interval=None,
            compression=None,
            max_size=MAX_MESSAGE,
            close_timeout=close_timeout,
            user_agent_header=f"agent-relay/{__version__}",
        )
    except InvalidStatus as exc:
        response = exc.response
        message = _describe_refusal(response.status_code, bytes(response.body))
        if response.status_code in _NOT_A_RELAY and not _relay_json(bytes(response.body)):
            message += f"; {NOT_A_RELAY}"
        raise DialError(
            message,
            response.status_code,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        ) from None
    except InvalidHandshake as exc:
        raise DialError(f"bad WebSocket handshake: {exc}; {NOT_A_RELAY}") from None
    except TimeoutError:
        raise DialError(f"no answer within {open_timeout:g} s") from None
    except ssl.SSLCertVerificationError as exc:
        raise DialError(f"TLS certificate not trusted: {exc.verify_message}") from None
    except OSError as exc:
        error = DialError(_describe_os_error(exc))
        error.nothing_listens = isinstance(exc, ConnectionRefusedError)
        raise error from None
    except WebSocketException as exc:
        raise DialError(str(exc) or type(exc).__name__) from None


# What a web server that is not a relay answers an upgrade to /v1/relay/connect with (a
# relay's own answers carry a JSON error; a proxy's 502/503 are about the relay behind it).
_NOT_A_RELAY = frozenset({200, 204, 301, 302, 303, 307, 308, 404, 405, 501})
NOT_A_RELAY = (
    "not an agent-relay relay's answer: give --relay the relay's base URL, and keep login "
    "proxies off /v1/relay"
)


def _relay_json(body: bytes) -> bool:
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and isinstance(payload.get("error"), str)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delta form; a date is not worth trusting a clock
    for), bounded: a relay cannot park a host for more than a few minutes."""
    if value is None or not value.strip().isdigit():
        return None
    return float(min(int(value.strip()), MAX_RETRY_AFTER))


def _describe_refusal(status: int, body: bytes) -> str:
    """``401 invalid token``: the status and the relay's JSON ``error`` when it sent one."""
    message = ""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        message = payload["error"]
    elif body and len(body) <= 200 and body.isascii():
        message = body.decode("ascii").strip()
    return f"{status} {message}".strip() if message else f"{status} (no explanation from relay)"


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(exc):
        return "that port speaks plain HTTP, not TLS: use http:// in --relay"
    return exc.strerror or str(exc) or type(exc).__name__

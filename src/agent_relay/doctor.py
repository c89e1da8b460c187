"""``agent-relay doctor``: check a relay from the outside, the way a host connector or a
client reaches it, and say plainly what is wrong.

In order: the URL; DNS; TCP; TLS (the certificate, with the system's roots plus
``--ca-file``); ``/ready`` and its database field; that ``/v1/relay/connect`` is answered
by the relay itself (a WebSocket upgrade with a deliberately invalid token must get the
relay's JSON 401, not a redirect or a login page from an auth proxy); the token (accepted
or refused, expired, issued in the future); the host (online or not); the clock against
the relay's ``Date``. Nothing is changed at the relay, except that checking a host through
an ingress that hides ``/v1/hosts`` creates one relay session, as a browser would.

The judging functions are pure (an answer in, a finding out); :func:`diagnose` does the
I/O with one short HTTP/1.1 exchange (h11) per probe.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import json
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import h11

from . import __version__
from .baseurl import RelayUrl
from .errors import AgentRelayError
from .host.dial import CONNECT_PATH
from .tls import tls_context

MAX_BODY = 64 * 1024  # we read this much of an answer, at most
CLOCK_TOLERANCE = 30.0  # seconds: request signatures allow ±30 s
PROBE_TOKEN = "agent-relay-doctor.invalid.token"  # noqa: S105 - deliberately invalid
PROBE_MACHINE_ID = "agent-relay-doctor"


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    status: Status
    check: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class Options:
    relay_url: str
    token: str | None = None
    host_id: str | None = None
    ca_file: Path | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class Target:
    scheme: str  # http or https
    host: str
    port: int
    prefix: str  # path prefix of the relay, without trailing slash

    @property
    def origin(self) -> str:
        return RelayUrl(self.scheme, self.host, self.port, "", self.prefix).origin


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes

    @property
    def json(self) -> Any:
        if "json" not in self.headers.get("content-type", ""):
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def relay_error(self) -> str | None:
        """The relay's ``{"error": …}`` message, when the answer is one."""
        payload = self.json
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            return str(payload["error"])
        return None

    @property
    def looks_like_html(self) -> bool:
        return "html" in self.headers.get("content-type", "") or self.body.lstrip()[:1] == b"<"

    def describe(self) -> str:
        kind = self.headers.get("content-type", "no content type").split(";")[0]
        error = self.relay_error
        return f"HTTP {self.status} ({error})" if error else f"HTTP {self.status}, {kind}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        return finding

    @property
    def failed(self) -> bool:
        return any(f.status is Status.FAIL for f in self.findings)


# --------------------------------------------------------------------- pure judging


def parse_target(url: str) -> Target:
    relay = RelayUrl.parse(url)
    return Target(relay.scheme, relay.host, relay.port, relay.prefix)


def judge_health(answer: Answer) -> Finding:
    payload = answer.json
    if isinstance(payload, dict) and "database" in payload:
        if answer.status == 200 and payload.get("database") == "ok":
            return Finding(Status.OK, "health", "the relay is up; its database answers")
        if payload.get("database") == "ok" and payload.get("accepting_tunnels") is False:
            return Finding(Status.WARN, "health", "the relay is draining (shutting down)")
        return Finding(
            Status.FAIL,
            "health",
            f"the relay is up but its database is {payload.get('database')!r} "
            f"({answer.describe()})",
            "check SERVER_DATABASE_URL and that PostgreSQL accepts the relay's connections "
            "(the relay's log says more)",
        )
    return Finding(
        Status.WARN,
        "health",
        f"/ready is not the relay's ({answer.describe()})",
        "expected when the ingress sends only /v1/relay/* to the relay (the sidecar setup); "
        "otherwise the URL does not point at the relay",
    )


def judge_connect_probe(answer: Answer) -> Finding:
    """The answer to a WebSocket upgrade of /v1/relay/connect with an invalid token."""
    check = "connect route"
    if answer.status == 401 and answer.relay_error is not None:
        return Finding(
            Status.OK,
            check,
            "the relay itself answers WebSocket upgrades on /v1/relay/connect "
            "(401 for a bad token, as it should; no auth proxy in the way)",
        )
    if 300 <= answer.status < 400:
        location = answer.headers.get("location", "?")
        return Finding(
            Status.FAIL,
            check,
            f"/v1/relay/connect is redirected to {location}: a login (forward-auth) proxy "
            "intercepts the relay's routes, so the host's WebSocket upgrade never arrives",
            "exempt /v1/relay from forward-auth: a route for PathPrefix(`/v1/relay`) without "
            "the auth middleware, before the catch-all (deploy/traefik/ingressroute.yaml)",
        )
    if answer.status in (401, 403, 407):
        return Finding(
            Status.FAIL,
            check,
            f"something in front of the relay refuses the upgrade ({answer.describe()}); "
            "the relay's own refusal is JSON with an error",
            "remove forward-auth / basic auth from the /v1/relay route: the relay checks "
            "tokens itself",
        )
    if answer.status == 404:
        return Finding(
            Status.FAIL,
            check,
            f"no relay at {CONNECT_PATH} ({answer.describe()})",
            "route /v1/relay/* to the relay's port 8082 (the PathPrefix rule before the "
            "catch-all), and check the URL's path prefix",
        )
    if answer.status == 101:
        return Finding(
            Status.FAIL,
            check,
            "a WebSocket upgrade with an invalid token was accepted: this is not a relay "
            "that checks tokens",
        )
    if answer.status in (502, 503, 504) and answer.relay_error is None:
        return Finding(
            Status.FAIL,
            check,
            f"the proxy in front cannot reach the relay ({answer.describe()})",
            "is the relay running, and does its Service expose port 8082?",
        )
    if answer.status == 503:
        return Finding(Status.WARN, check, f"the relay is refusing hosts: {answer.relay_error}")
    return Finding(
        Status.FAIL,
        check,
        f"unexpected answer to a WebSocket upgrade: {answer.describe()}",
        "a proxy may strip the Upgrade and Connection headers; it must pass WebSockets",
    )


def token_claims(token: str) -> dict[str, Any] | None:
    """The JWT's claims, unverified (only the relay can verify them): for advice."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def judge_token(answer: Answer, token: str, now: float) -> Finding:
    """The answer to GET /v1/relay/connect without an upgrade, with the token: the relay
    checks the token first, so 400 (not an upgrade) means it was accepted."""
    claims = token_claims(token) or {}
    expires = claims.get("exp")
    issued = claims.get("iat")
    when = ""
    if isinstance(expires, int | float):
        left = expires - now
        when = (
            f"; expires {_stamp(expires)} (in {_duration(left)})"
            if left > 0
            else f"; expired {_stamp(expires)} ({_duration(-left)} ago)"
        )
    if answer.status == 400 and answer.relay_error is not None:
        if isinstance(expires, int | float) and expires <= now:
            # Past its exp but inside the relay's leeway for clock skew: accepted for
            # seconds more, which is no reason to say "ok".
            return Finding(
                Status.WARN,
                "token",
                f"the token has expired ({_duration(now - expires)} ago); the relay still "
                f"accepts it for a short grace for clock skew, then refuses it",
                "issue a new one (agent-relay tokens issue USER), or log in again",
            )
        return Finding(Status.OK, "token", f"the relay accepts the token{when}")
    if answer.status == 401 and answer.relay_error is not None:
        reason = answer.relay_error
        if isinstance(expires, int | float) and expires < now:
            hint = "issue a new one (agent-relay tokens issue USER), or log in again"
        elif isinstance(issued, int | float) and issued > now + 60:
            hint = "the token was issued in the future: a clock is wrong (run NTP)"
        elif not claims:
            hint = "this is not a JWT; copy the whole token"
        else:
            hint = (
                "a token signed with another secret (the relay's VIBEKANBAN_REMOTE_JWT_SECRET "
                "or jwt-secret file differs from the issuer's), a revoked login, or another "
                "relay's token"
            )
        return Finding(Status.FAIL, "token", f"the relay refuses the token: {reason}{when}", hint)
    return Finding(
        Status.FAIL, "token", f"cannot check the token: {answer.describe()} from the relay"
    )


def judge_hosts(answer: Answer, host_id: str) -> Finding | None:
    """GET /v1/hosts: the finding, or None when the route is not the relay's."""
    payload = answer.json
    if answer.status != 200 or not isinstance(payload, dict):
        return None
    hosts = payload.get("hosts")
    if not isinstance(hosts, list):
        return None
    for host in hosts:
        if isinstance(host, dict) and host.get("id") == host_id:
            name = host.get("name")
            if host.get("online"):
                return Finding(Status.OK, "host", f"host {host_id} ({name}) is online")
            return Finding(
                Status.FAIL,
                "host",
                f"host {host_id} ({name}) is offline (last seen {host.get('last_seen_at')})",
                "look at the connector's log (agent-relay host …) or its --status-listen "
                "endpoint: it says why it cannot connect",
            )
    return Finding(
        Status.FAIL,
        "host",
        f"no host {host_id} among the {len(hosts)} this token's user can see",
        "the connector must use a token of the same user (or an organization member's); "
        "`agent-relay doctor` with the connector's token lists that host",
    )


def judge_clock(date_header: str | None, now: float) -> Finding | None:
    if not date_header:
        return None
    try:
        relay_time = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return None
    skew = now - relay_time
    if abs(skew) <= CLOCK_TOLERANCE:
        return Finding(Status.OK, "clock", f"this clock is within {abs(skew):.0f} s of the relay's")
    direction = "ahead of" if skew > 0 else "behind"
    return Finding(
        Status.WARN,
        "clock",
        f"this clock is {abs(skew):.0f} s {direction} the relay's",
        "signed requests allow ±30 s and tokens 60 s: run NTP (timedatectl set-ntp true) "
        "on this machine or the relay's",
    )


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


# --------------------------------------------------------------------- I/O


class ProbeError(AgentRelayError):
    pass


class Prober:
    """One short HTTP/1.1 exchange per call, on a new connection (TLS when https)."""

    def __init__(self, target: Target, tls: ssl.SSLContext | None, timeout: float) -> None:
        self.target = target
        self.tls = tls
        self.timeout = timeout

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection(
                self.target.host,
                self.target.port,
                ssl=self.tls,
                server_hostname=self.target.host if self.tls else None,
            ),
            self.timeout,
        )

    async def request(
        self, method: str, path: str, headers: list[tuple[str, str]] | None = None
    ) -> Answer:
        try:
            return await asyncio.wait_for(self._exchange(method, path, headers or []), self.timeout)
        except TimeoutError:
            raise ProbeError(f"no answer within {self.timeout:g} s") from None
        except (OSError, h11.ProtocolError) as exc:
            raise ProbeError(str(exc) or type(exc).__name__) from None

    async def _exchange(self, method: str, path: str, headers: list[tuple[str, str]]) -> Answer:
        reader, writer = await self.open()
        try:
            http = h11.Connection(h11.CLIENT)
            host = self.target.origin.split("://", 1)[1]
            request = h11.Request(
                method=method,
                target=self.target.prefix + path,
                headers=[
                    ("host", host),
                    ("user-agent", f"agent-relay-doctor/{__version__}"),
                    ("accept", "application/json"),
                    *headers,
                ],
            )
            writer.write(http.send(request) + http.send(h11.EndOfMessage()))
            await writer.drain()
            status = 0
            answer_headers: dict[str, str] = {}
            body = bytearray()
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    http.receive_data(await reader.read(65536))
                    continue
                ended = h11.EndOfMessage | h11.ConnectionClosed
                if event is h11.PAUSED or isinstance(event, ended):
                    break
                if isinstance(event, h11.InformationalResponse | h11.Response):
                    status = event.status_code
                    answer_headers = {
                        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers
                    }
                    if status == 101:
                        break
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) >= MAX_BODY:
                        break
            return Answer(status, answer_headers, bytes(body[:MAX_BODY]))
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def diagnose(options: Options, *, now: Callable[[], float] = time.time) -> Report:
    report = Report()
    try:
        target = parse_target(options.relay_url)
    except ValueError as exc:
        report.add(Finding(Status.FAIL, "url", str(exc)))
        return report
    report.add(Finding(Status.OK, "url", f"relay at {target.origin}{target.prefix or '/'}"))

    if not await _check_network(report, target, options):
        return report
    tls = tls_context(options.ca_file) if target.scheme == "https" else None
    if tls is not None and not await _check_tls(report, target, tls, options.timeout):
        return report
    prober = Prober(target, tls, options.timeout)

    date_header: str | None = None
    try:
        health = await prober.request("GET", "/ready")
        date_header = health.headers.get("date")
        report.add(judge_health(health))
    except ProbeError as exc:
        report.add(Finding(Status.FAIL, "health", f"GET /ready failed: {exc}"))

    connect_path = f"{CONNECT_PATH}?machine_id={PROBE_MACHINE_ID}"
    upgrade = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", base64.b64encode(secrets.token_bytes(16)).decode()),
    ]
    route_ok = False
    try:
        probe = await prober.request(
            "GET", connect_path, [*upgrade, ("authorization", f"Bearer {PROBE_TOKEN}")]
        )
        date_header = date_header or probe.headers.get("date")
        route_ok = report.add(judge_connect_probe(probe)).status is Status.OK
    except ProbeError as exc:
        report.add(Finding(Status.FAIL, "connect route", f"the upgrade probe failed: {exc}"))

    token = options.token
    if token is None:
        report.add(Finding(Status.SKIP, "token", "no token given (--token or --token-file)"))
    elif not route_ok:
        report.add(Finding(Status.SKIP, "token", "skipped: the relay's route is not reachable"))
    else:
        try:
            answer = await prober.request(
                "GET", connect_path, [("authorization", f"Bearer {token}")]
            )
            report.add(judge_token(answer, token, now()))
        except ProbeError as exc:
            report.add(Finding(Status.FAIL, "token", f"checking the token failed: {exc}"))

    if options.host_id is not None:
        token_ok = any(f.check == "token" and f.status is Status.OK for f in report.findings)
        if not token_ok:
            report.add(Finding(Status.SKIP, "host", "needs an accepted token"))
        else:
            assert token is not None
            await _check_host(report, prober, token, options.host_id)

    clock = judge_clock(date_header, now())
    if clock is not None:
        report.add(clock)
    return report


async def _check_network(report: Report, target: Target, options: Options) -> bool:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM),
            options.timeout,
        )
    except (OSError, TimeoutError) as exc:
        report.add(
            Finding(
                Status.FAIL,
                "dns",
                f"cannot resolve {target.host}: {_reason(exc)}",
                "check the name and its DNS record",
            )
        )
        return False
    addresses = sorted({str(info[4][0]) for info in infos})
    report.add(Finding(Status.OK, "dns", f"{target.host} → {', '.join(addresses)}"))
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port), options.timeout
        )
    except (OSError, TimeoutError) as exc:
        report.add(
            Finding(
                Status.FAIL,
                "tcp",
                f"cannot connect to {target.host}:{target.port}: {_reason(exc)}",
                "is the relay (or the proxy in front of it) running and listening there? "
                "a firewall?",
            )
        )
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    report.add(Finding(Status.OK, "tcp", f"{target.host}:{target.port} accepts connections"))
    return True


async def _check_tls(report: Report, target: Target, tls: ssl.SSLContext, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port, ssl=tls, server_hostname=target.host),
            timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        report.add(
            Finding(
                Status.FAIL,
                "tls",
                f"the certificate is not trusted: {exc.verify_message}",
                "a private CA: pass --ca-file (and agent-relay host --ca-file); an expired or "
                "wrong-name certificate: fix it at the proxy (Caddy and cert-manager renew)",
            )
        )
        return False
    except (OSError, TimeoutError) as exc:
        report.add(
            Finding(
                Status.FAIL,
                "tls",
                f"TLS handshake failed: {_reason(exc)}",
                "does this port speak TLS? (a plain HTTP port needs an http:// URL)",
            )
        )
        return False
    try:
        cert = writer.get_extra_info("peercert") or {}
        expires = ssl.cert_time_to_seconds(cert["notAfter"]) if "notAfter" in cert else None
        issuer = dict(x[0] for x in cert.get("issuer", ()))
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    detail = f"certificate for {target.host} verified"
    if issuer.get("organizationName") or issuer.get("commonName"):
        detail += f", issued by {issuer.get('organizationName') or issuer.get('commonName')}"
    if expires is not None:
        left = expires - time.time()
        detail += f", expires {_stamp(expires)}"
        if left < 14 * 86400:
            report.add(
                Finding(Status.WARN, "tls", detail, "renew it soon (expires in under 14 days)")
            )
            return True
    report.add(Finding(Status.OK, "tls", detail))
    return True


async def _check_host(report: Report, prober: Prober, token: str, host_id: str) -> None:
    bearer = [("authorization", f"Bearer {token}")]
    try:
        finding = judge_hosts(await prober.request("GET", "/v1/hosts", bearer), host_id)
        if finding is None:
            # /v1/hosts is not routed to the relay (sidecar ingress): ask through a relay
            # session, as a browser would.
            finding = await _host_through_session(prober, bearer, host_id)
    except ProbeError as exc:
        finding = Finding(Status.FAIL, "host", f"checking the host failed: {exc}")
    report.add(finding)


async def _host_through_session(
    prober: Prober, bearer: list[tuple[str, str]], host_id: str
) -> Finding:
    created = await prober.request(
        "POST", f"/v1/relay/create/{quote(host_id, safe='')}", [*bearer, ("content-length", "0")]
    )
    if created.status != 200:
        hint = None
        if created.status == 403:
            hint = "the token's user neither owns the host nor shares its organization"
        return Finding(
            Status.FAIL, "host", f"cannot open a relay session: {created.describe()}", hint
        )
    payload = created.json
    session_id = payload.get("session_id") if isinstance(payload, dict) else None
    if not isinstance(session_id, str):
        return Finding(Status.FAIL, "host", "the relay's answer to create has no session_id")
    answer = await prober.request(
        "GET", f"/v1/relay/h/{quote(host_id, safe='')}/s/{quote(session_id, safe='')}/"
    )
    if answer.status == 404 and answer.relay_error == "No active relay":
        return Finding(
            Status.FAIL,
            "host",
            f"host {host_id} is not connected to the relay",
            "look at the connector's log (agent-relay host …): it says why it cannot connect",
        )
    return Finding(
        Status.OK, "host", f"host {host_id} is connected (its server answered {answer.status})"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return exc.strerror or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def format_report(report: Report, *, color: bool = False) -> str:
    colors = {Status.OK: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "90"}
    lines = []
    for finding in report.findings:
        label = f"{finding.status.value:<4}"
        if color:
            label = f"\x1b[{colors[finding.status]}m{label}\x1b[0m"
        lines.append(f"{label}  {finding.check:<13} {finding.message}")
        if finding.hint and finding.status in (Status.FAIL, Status.WARN):
            lines.append(f"{'':<4}  {'':<13} → {finding.hint}")
    failed = [f.check for f in report.findings if f.status is Status.FAIL]
    lines.append(f"{len(failed)} problem(s): {', '.join(failed)}" if failed else "no problem found")
    return "\n".join(lines)


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from ``--token-file`` (first) or ``--token``."""
    if token_file is not None:
        text = token_file.read_text("utf-8").strip()
        if not text:
            raise ValueError(f"{token_file} is empty")
        return text
    return token.strip() if token else None

"""The seed's ingress split, carried by Caddy: a Caddyfile GENERATED from the shipped
Traefik IngressRoute (deploy/traefik/ingressroute.yaml), so the split tested is the one
users deploy. Traefik itself cannot be had here; what the IngressRoute uses maps onto
Caddy one to one:

* routes in Traefik's order (``priority``, else the longer rule first) -> ``handle``
  blocks in one ``route``, the first match wins;
* ``Host(`…`)`` -> the site (replaced by the test's loopback name), ``PathPrefix(`p`)``
  -> ``path p*``;
* Middleware ``ipAllowList`` -> 403 unless ``remote_ip`` is in ``sourceRange`` (plus the
  test's own source, as the deployment notes ask for the connector's egress address);
  ``headers`` -> ``header``; ``forwardAuth`` -> ``forward_auth`` to the stand-in auth
  service (``authResponseHeaders`` -> ``copy_headers``);
* a service's port -> the upstream the test names for that port.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .caddy import Caddy, free_port, running_caddyfile
from .tlsca import CertificateFiles

INGRESS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "traefik" / "ingressroute.yaml"
TEST_SOURCE = "127.0.0.1/32"  # where the test's connector and clients come from

Doc = dict[str, Any]


def load_ingress(path: Path = INGRESS_FILE) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@dataclass(frozen=True)
class Rule:
    host: str
    path_prefix: str | None


_MATCHER = re.compile(r"(Host|PathPrefix)\(`([^`]*)`\)")


def parse_rule(match: str) -> Rule:
    """The subset of Traefik's rule language the IngressRoute uses: ``&&`` of ``Host`` and
    ``PathPrefix``. Anything else is an error, so a new rule cannot pass untested."""
    found: dict[str, str] = {}
    for part in (p.strip() for p in match.split("&&")):
        parsed = _MATCHER.fullmatch(part)
        if parsed is None or parsed.group(1) in found:
            raise ValueError(f"rule not understood by the Caddy translation: {match!r}")
        found[parsed.group(1)] = parsed.group(2)
    if "Host" not in found:
        raise ValueError(f"rule without Host: {match!r}")
    return Rule(found["Host"], found.get("PathPrefix"))


def _traefik_order(routes: list[Doc]) -> list[Doc]:
    """Traefik's order: higher ``priority`` first; by default the priority is the rule's
    length."""
    return sorted(routes, key=lambda r: r.get("priority") or len(r["match"]), reverse=True)


def _middleware(spec: Doc, auth: str, index: int) -> list[str]:
    if "ipAllowList" in spec:
        ranges = " ".join([*spec["ipAllowList"]["sourceRange"], TEST_SOURCE])
        return [f"@outside{index} not remote_ip {ranges}", f"respond @outside{index} 403"]
    if "headers" in spec:
        h = spec["headers"]
        lines = []
        if "stsSeconds" in h:
            sts = f"max-age={h['stsSeconds']}"
            if h.get("stsIncludeSubdomains"):
                sts += "; includeSubDomains"
            lines.append(f'header Strict-Transport-Security "{sts}"')
        if h.get("contentTypeNosniff"):
            lines.append("header X-Content-Type-Options nosniff")
        if h.get("frameDeny"):
            lines.append("header X-Frame-Options DENY")
        if "referrerPolicy" in h:
            lines.append(f"header Referrer-Policy {h['referrerPolicy']}")
        return lines
    if "forwardAuth" in spec:
        forward = spec["forwardAuth"]
        address = urlsplit(forward["address"])
        lines = [f"forward_auth {auth} {{", f"\turi {address.path or '/'}"]
        if forward.get("authResponseHeaders"):
            lines.append(f"\tcopy_headers {' '.join(forward['authResponseHeaders'])}")
        return [*lines, "}"]
    raise ValueError(f"middleware not understood by the Caddy translation: {spec}")


def caddy_routes(documents: list[Doc], *, upstreams: dict[int, str], auth: str) -> str:
    """The Caddyfile ``route`` block for the IngressRoute in ``documents``; ``upstreams``
    maps a service port to ``host:port``, ``auth`` is the forward-auth service."""
    (ingress,) = [d for d in documents if d["kind"] == "IngressRoute"]
    middlewares = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "Middleware"}
    hosts = {parse_rule(r["match"]).host for r in ingress["spec"]["routes"]}
    if len(hosts) != 1:
        raise ValueError(f"one site expected, the routes name {sorted(hosts)}")
    lines = ["route {"]
    for index, route in enumerate(_traefik_order(ingress["spec"]["routes"])):
        rule = parse_rule(route["match"])
        if rule.path_prefix is not None:
            lines.append(f"\t@route{index} path {rule.path_prefix}*")
            lines.append(f"\thandle @route{index} {{")
        else:
            lines.append("\thandle {")
        lines.append("\t\troute {")  # the middlewares in the route's order
        for reference in route.get("middlewares", []):
            for line in _middleware(middlewares[reference["name"]], auth, index):
                lines.append(f"\t\t\t{line}")
        (service,) = route["services"]
        lines.append(f"\t\t\treverse_proxy {upstreams[service['port']]} {{")
        lines.append("\t\t\t\tflush_interval -1")  # as Traefik: streamed answers at once
        lines.append("\t\t\t}")
        lines.append("\t\t}")
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines)


def move_forward_auth_to_relay_route(documents: list[Doc]) -> list[Doc]:
    """The seed's top self-host failure: the login middleware on every route."""
    changed = list(yaml.safe_load_all(yaml.safe_dump_all(documents)))
    (ingress,) = [d for d in changed if d["kind"] == "IngressRoute"]
    auth = [
        d["metadata"]["name"]
        for d in changed
        if d["kind"] == "Middleware" and "forwardAuth" in d["spec"]
    ]
    for route in ingress["spec"]["routes"]:
        names = {m["name"] for m in route.get("middlewares", [])}
        route["middlewares"] = [*route.get("middlewares", [])] + [
            {"name": name} for name in auth if name not in names
        ]
    return changed


@contextlib.asynccontextmanager
async def running_ingress(
    directory: Path,
    certificates: CertificateFiles,
    *,
    documents: list[Doc],
    upstreams: dict[int, str],
    auth: str,
) -> AsyncIterator[Caddy]:
    routes = caddy_routes(documents, upstreams=upstreams, auth=auth)
    port = free_port()
    site = f"https://localhost:{port}, https://127.0.0.1:{port}"
    body = f"\ttls {certificates.cert} {certificates.key}\n" + "\n".join(
        f"\t{line}" for line in routes.splitlines()
    )
    async with running_caddyfile(
        directory, certificates, port, f"{site} {{\n{body}\n}}\n"
    ) as caddy:
        yield caddy

"""Caddy (Debian's package, installed by scripts/caddy.sh) as a real TLS-terminating
proxy on loopback, split like the Traefik IngressRoute in deploy/traefik: ``/v1/relay/*``
to the relay, everything else to another server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from .tlsca import CertificateFiles

START_TIMEOUT = 15.0


def find_caddy() -> str:
    path = os.environ.get("AGENT_RELAY_CADDY") or shutil.which("caddy")
    if not path:
        raise AssertionError("caddy is not installed (run scripts/caddy.sh)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


GLOBAL_OPTIONS = """\
{{
	admin off
	auto_https disable_redirects
	skip_install_trust
	http_port {http_port}
	https_port {https_port}
	storage file_system {state}
	log {{
		output stderr
		level WARN
	}}
}}

"""

CADDYFILE = (
    GLOBAL_OPTIONS
    + """\
https://localhost:{https_port}, https://127.0.0.1:{https_port} {{
	tls {cert} {key}
	handle /v1/relay/* {{
		reverse_proxy {relay}
	}}
	handle {{
		reverse_proxy {rest}
	}}
}}
"""
)


@dataclass
class Caddy:
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


def write_caddyfile(
    directory: Path, certificates: CertificateFiles, *, relay: str, rest: str
) -> tuple[Path, int]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    caddyfile = directory / "Caddyfile"
    caddyfile.write_text(
        CADDYFILE.format(
            http_port=free_port(),
            https_port=port,
            state=directory / "state",
            cert=certificates.cert,
            key=certificates.key,
            relay=relay,
            rest=rest,
        )
    )
    return caddyfile, port


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


@contextlib.asynccontextmanager
async def running_caddy(
    directory: Path, certificates: CertificateFiles, *, relay: str, rest: str
) -> AsyncIterator[Caddy]:
    """Caddy on a free loopback port, TLS with ``certificates``; ``relay`` and ``rest``
    are ``host:port`` upstreams."""
    caddyfile, port = write_caddyfile(directory, certificates, relay=relay, rest=rest)
    async with _run(directory, caddyfile, port, certificates) as caddy:
        yield caddy


@contextlib.asynccontextmanager
async def running_caddyfile(
    directory: Path, certificates: CertificateFiles, port: int, sites: str
) -> AsyncIterator[Caddy]:
    """Caddy with the test's global options and ``sites`` (serving HTTPS on ``port``)."""
    caddyfile = _write_sites(directory, port, sites)
    async with _run(directory, caddyfile, port, certificates) as caddy:
        yield caddy


def _write_sites(directory: Path, port: int, sites: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    caddyfile = directory / "Caddyfile"
    options = GLOBAL_OPTIONS.format(
        http_port=free_port(), https_port=port, state=directory / "state"
    )
    caddyfile.write_text(options + sites)
    return caddyfile


@contextlib.asynccontextmanager
async def _run(
    directory: Path, caddyfile: Path, port: int, certificates: CertificateFiles
) -> AsyncIterator[Caddy]:
    log = directory / "caddy.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "XDG_DATA_HOME": str(directory / "data"),
        "XDG_CONFIG_HOME": str(directory / "config"),
    }
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            find_caddy(),
            "run",
            "--adapter",
            "caddyfile",
            "--config",
            str(caddyfile),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        await _wait_until_serving(process, port, certificates.ca, log)
        yield Caddy(process, port, log)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_until_serving(
    process: asyncio.subprocess.Process, port: int, ca: Path, log: Path
) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline:
        if process.returncode is not None:
            break
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", port, ssl=context, server_hostname="localhost"
                ),
                2,
            )
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise AssertionError(f"caddy did not start serving on {port}:\n{_tail(log)}")

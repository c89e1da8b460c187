"""``agent-relay doctor``: check a relay from the outside."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import fail_cleanly, run


@click.command("doctor")
@click.option(
    "--relay",
    "relay_url",
    envvar="VK_SHARED_RELAY_API_BASE",
    required=True,
    metavar="URL",
    help="the relay's public base URL, e.g. https://relay.example [env: VK_SHARED_RELAY_API_BASE]",
)
@click.option(
    "--token",
    envvar="AGENT_RELAY_TOKEN",
    default=None,
    help="a token to check (the host's or a client's) [env: AGENT_RELAY_TOKEN]",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="a file holding the token",
)
@click.option("--host", "host_id", default=None, metavar="HOST_ID", help="a host to check")
@click.option(
    "--ca-file",
    envvar="AGENT_RELAY_CA_FILE",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="a PEM CA to trust besides the system's [env: AGENT_RELAY_CA_FILE]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 120),
    default=10.0,
    show_default=True,
    help="seconds for each check",
)
@fail_cleanly
def doctor_command(
    relay_url: str,
    token: str | None,
    token_file: Path | None,
    host_id: str | None,
    ca_file: Path | None,
    timeout: float,
) -> None:
    """Check a relay from the outside: DNS, TCP, TLS, /ready, that /v1/relay is not
    behind a login proxy, the token, and a host. Exit status 1 when something is wrong."""
    from ..doctor import Options, diagnose, format_report, read_token

    options = Options(
        relay_url=relay_url,
        token=read_token(token, token_file),
        host_id=host_id,
        ca_file=ca_file,
        timeout=timeout,
    )
    report = run(diagnose(options))
    click.echo(format_report(report, color=sys.stdout.isatty()))
    if report.failed:
        sys.exit(1)

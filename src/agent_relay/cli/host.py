"""``agent-relay host``: run the connector, make pairing codes, list and revoke the
clients paired with this host."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import click
from click.core import ParameterSource

from .common import (
    config_option,
    default_data_dir,
    event_loop_option,
    fail_cleanly,
    is_listen_error,
    listen_failure,
    log_format_option,
    run,
    setup_logging,
)
from .common import data_dir as make_data_dir


@click.group("host", invoke_without_command=True)
@click.option(
    "--relay",
    "relay_url",
    envvar="VK_SHARED_RELAY_API_BASE",
    metavar="URL",
    help="the relay's base URL, e.g. https://relay.example [env: VK_SHARED_RELAY_API_BASE]",
)
@click.option(
    "--upstream",
    envvar="AGENT_RELAY_UPSTREAM",
    metavar="URL",
    help="the local agent server: http://HOST:PORT or unix:/path/to.sock "
    "[env: AGENT_RELAY_UPSTREAM]",
)
@click.option("--name", default=None, help="this host's name at the relay [default: hostname]")
@click.option(
    "--token",
    envvar="AGENT_RELAY_TOKEN",
    default=None,
    help="the token to connect with [env: AGENT_RELAY_TOKEN]",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="a file holding the token, read again before every connection attempt",
)
@click.option(
    "--token-command",
    default=None,
    metavar="CMD",
    help="a shell command that prints the token, run before every connection attempt",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="where the machine id is kept [env: AGENT_RELAY_DATA_DIR]",
)
@click.option(
    "--ca-file",
    envvar="AGENT_RELAY_CA_FILE",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="a PEM CA to trust for wss:// besides the system's (SSL_CERT_FILE also works) "
    "[env: AGENT_RELAY_CA_FILE]",
)
@click.option(
    "--status-listen",
    default=None,
    metavar="HOST:PORT",
    help="serve GET /_relay/status (JSON, no auth) there, e.g. 127.0.0.1:8083; keep it on "
    "loopback (default: off)",
)
@click.option(
    "--status-allowed-host",
    "status_allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="a Host name besides loopback the status page may be opened by (a listener on a "
    "LAN address); repeat for more",
)
@click.option(
    "--ui-url",
    default=None,
    metavar="URL",
    help="the remote web UI the pairing page links to, when it is not at the relay",
)
@click.option(
    "--max-upstream-connections",
    type=click.IntRange(1, 100_000),
    default=256,
    show_default=True,
    help="connections to the local server carrying requests at once (more wait)",
)
@click.option(
    "--upstream-idle-timeout",
    type=click.FloatRange(0.1),
    default=4.0,
    show_default=True,
    help="seconds an idle keep-alive connection to the local server is kept",
)
@click.option(
    "--response-timeout",
    type=click.FloatRange(0.1),
    default=590.0,
    show_default=True,
    help="seconds for the local server to start answering (then 502)",
)
@click.option(
    "--max-head-size",
    type=click.IntRange(1024, 16 * 1024 * 1024),
    default=128 * 1024,
    show_default=True,
    help="largest request head from the relay and response head from the local server, bytes",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(0),
    default=25.0,
    show_default=True,
    help="seconds in-flight requests get on SIGTERM",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    envvar="AGENT_RELAY_ALLOW_UNSIGNED",
    help="forward relayed requests without checking signatures (the trust layer off; "
    "for a local server that checks them itself) [env: AGENT_RELAY_ALLOW_UNSIGNED=1]",
)
@click.option(
    "--trusted-keys-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="keep paired clients in this JSON file (the reference's "
    "trusted_ed25519_public_keys.json format) instead of SQLite in the data dir",
)
@click.option("--p2p", is_flag=True, help="answer WebRTC upgrades (needs agent-relay[webrtc])")
@click.option("--stun", multiple=True, help="a STUN server HOST:PORT for --p2p (none by default)")
@click.option("--turn", multiple=True, help="a TURN server USER:PASS@HOST:PORT for --p2p")
@log_format_option
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@event_loop_option
@config_option
@fail_cleanly
def host_command(
    relay_url: str | None,
    upstream: str | None,
    name: str | None,
    token: str | None,
    token_file: Path | None,
    token_command: str | None,
    data_dir: Path | None,
    ca_file: Path | None,
    status_listen: str | None,
    status_allowed_hosts: tuple[str, ...],
    ui_url: str | None,
    max_upstream_connections: int,
    upstream_idle_timeout: float,
    response_timeout: float,
    max_head_size: int,
    shutdown_timeout: float,
    allow_unsigned: bool,
    trusted_keys_file: Path | None,
    p2p: bool,
    stun: tuple[str, ...],
    turn: tuple[str, ...],
    log_format: str,
    verbose: bool,
    event_loop: str,
) -> None:
    """Connect the local agent server to a relay: dial out, serve what the relay sends.

    Relayed requests must be signed by a paired client (see `host pair-code`), and the
    answers are signed, unless --allow-unsigned."""
    from ..host.assembly import ConnectorSettings, assemble
    from ..host.service import PageSettings
    from ..tokens import token_source

    context = click.get_current_context()
    if context.invoked_subcommand is not None:
        return
    if relay_url is None:
        raise click.UsageError("--relay (or VK_SHARED_RELAY_API_BASE) is required")
    if upstream is None:
        raise click.UsageError("--upstream (or AGENT_RELAY_UPSTREAM) is required")
    from_environment = context.get_parameter_source("token") is ParameterSource.ENVIRONMENT
    if from_environment and (token_file is not None or token_command is not None):
        token = None  # an explicit option wins over the environment
    if sum(x is not None for x in (token, token_file, token_command)) != 1:
        raise click.UsageError("give exactly one of --token, --token-file or --token-command")
    assembled = assemble(
        ConnectorSettings(
            relay_url=relay_url,
            upstream=upstream,
            tokens=token_source(token, token_file, token_command),
            data_dir=make_data_dir(data_dir),
            name=name,
            ca_file=ca_file,
            status_listen=status_listen,
            max_upstream_connections=max_upstream_connections,
            upstream_idle_timeout=upstream_idle_timeout,
            response_timeout=response_timeout,
            max_head_size=max_head_size,
            shutdown_timeout=shutdown_timeout,
            allow_unsigned=allow_unsigned,
            trusted_keys_file=trusted_keys_file,
            # Not an option: only the compatibility tests want a host without them.
            signed_headers=os.environ.get("AGENT_RELAY_SIGNED_HEADERS", "1") != "0",
            p2p=p2p,
            stun=stun,
            turn=turn,
            page=PageSettings(status_allowed_hosts, ui_url),
        )
    )
    setup_logging(verbose, log_format)
    if allow_unsigned:
        logging.getLogger(__name__).warning(
            "--allow-unsigned: relayed requests are forwarded without signature checks"
        )
    try:
        run(assembled.run_until_signalled(), event_loop=event_loop)
    except OSError as exc:
        if status_listen is None or not is_listen_error(exc):
            raise
        raise listen_failure(exc, status_listen, "--status-listen") from None


_host_data_dir = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="the connector's data dir [env: AGENT_RELAY_DATA_DIR]",
)
_host_keys_file = click.option(
    "--trusted-keys-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="the JSON file of paired clients, if the connector uses one",
)


@host_command.command("pair-code")
@_host_data_dir
@click.option(
    "--ttl",
    type=click.FloatRange(0.1, 24 * 60),
    default=10.0,
    show_default=True,
    help="minutes the code stays valid",
)
@fail_cleanly
def host_pair_code(data_dir: Path | None, ttl: float) -> None:
    """Make a one-time pairing code for a client to pair with this host.

    It goes to the data dir, where a running connector reads it when a pairing starts;
    a new code replaces the previous one."""
    from ..host.identity import MACHINE_ID_FILE
    from ..host.service import STATUS_FILE
    from ..trust.host import TrustHost
    from ..trust.limits import TrustLimits

    limits = TrustLimits(code_ttl=ttl * 60)
    trust = TrustHost.open(data_dir or default_data_dir(), limits=limits)
    state = data_dir or default_data_dir()
    if not (state / MACHINE_ID_FILE).exists():
        click.echo(
            f"warning: no connector has run with the data dir {state}; a connector reads "
            "the code from its own data dir (give this command the same --data-dir)",
            err=True,
        )
    code = trust.issue_code(time.time())
    minutes = round((code.expires_at - time.time()) / 60)
    if (state / MACHINE_ID_FILE).exists() and not (state / STATUS_FILE).exists():
        click.echo(
            f"note: no connector is running with the data dir {state} now; the code works "
            f"once one starts with it (within {minutes} min)",
            err=True,
        )
    click.echo(code.code)
    click.echo(f"valid for {minutes} min, for one pairing attempt", err=True)


@host_command.command("status")
@_host_data_dir
@click.option("--json", "as_json", is_flag=True, help="print the whole status JSON")
@fail_cleanly
def host_status(data_dir: Path | None, as_json: bool) -> None:
    """What the connector running with this data dir is doing (it keeps its status in
    the data dir; no --status-listen needed). Exit status 1 unless it is connected."""
    import os

    from ..host.service import STATUS_FILE

    state = data_dir or default_data_dir()
    path = state / STATUS_FILE
    try:
        document = json.loads(path.read_bytes())
        pid = int(document["pid"])
    except FileNotFoundError:
        raise click.ClickException(
            f"no connector is running with the data dir {state} (start one with "
            "`agent-relay host`, or give its --data-dir)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise click.ClickException(
            f"the connector that ran with the data dir {state} (pid {pid}) has ended"
        ) from None
    except PermissionError:
        pass  # alive, under another user
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        trust = document.get("trust") or {}
        lines = [
            f"{document.get('status')}",
            f"host id: {document.get('host_id') or 'unknown yet'}; name {document.get('name')!r}",
            f"local server: {document.get('upstream')}",
            f"requests in flight: {document.get('active_streams')}, served: "
            f"{document.get('streams_served')}; reconnects: {document.get('reconnects')}",
        ]
        if trust.get("signatures_required"):
            lines.append(f"paired clients: {trust.get('paired_clients')}")
        if document.get("last_error"):
            lines.append(f"last error: {document.get('last_error')}")
        lines.append(f"pid {pid}")
        click.echo("\n".join(lines))
    if not document.get("connected"):
        raise SystemExit(1)


@host_command.group("clients")
def host_clients() -> None:
    """The clients paired with this host."""


@host_clients.command("list")
@_host_data_dir
@_host_keys_file
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@fail_cleanly
def host_clients_list(data_dir: Path | None, trusted_keys_file: Path | None, as_json: bool) -> None:
    """List paired clients."""
    from ..trust.host import TrustHost

    trust = TrustHost.open(data_dir or default_data_dir(), trusted_keys_file=trusted_keys_file)
    clients = trust.list_clients()
    if as_json:
        click.echo(json.dumps([c.public_info() for c in clients], indent=2))
        return
    if not clients:
        click.echo("no paired clients", err=True)
    for c in clients:
        paired = time.strftime("%Y-%m-%d %H:%M", time.gmtime(c.paired_at))
        what = ", ".join(x for x in (c.client_browser, c.client_os, c.client_device) if x)
        click.echo(f"{c.client_id}  {c.client_name or '-'}  ({what or '?'})  paired {paired} UTC")


@host_clients.command("revoke")
@click.argument("client_id")
@_host_data_dir
@_host_keys_file
@fail_cleanly
def host_clients_revoke(
    client_id: str, data_dir: Path | None, trusted_keys_file: Path | None
) -> None:
    """Revoke a paired client: a running connector ends its sessions and closes its
    WebSockets within a second."""
    from ..trust.host import TrustHost

    trust = TrustHost.open(data_dir or default_data_dir(), trusted_keys_file=trusted_keys_file)
    if not trust.revoke(client_id):
        raise click.ClickException(f"no paired client {client_id}")
    click.echo(f"revoked {client_id}", err=True)

"""The ``agent-relay`` command line, and the reference-compatible ``relay-server``."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
import platformdirs

from . import __version__

if TYPE_CHECKING:
    from .host.tokens import TokenSource
    from .relay.auth import JwtSecret

P = ParamSpec("P")
R = TypeVar("R")

DATABASE_ENV = ["SERVER_DATABASE_URL", "DATABASE_URL"]
SECRET_FILE_NAME = "jwt-secret"  # noqa: S105 - a file name, not a secret
# relay.auth.SECRET_ENV, spelled out so that the help text needs no import of the relay.
SECRET_ENV = "VIBEKANBAN_REMOTE_JWT_SECRET"  # noqa: S105 - a variable name, not a secret

# Subcommands import what they run inside their functions: `agent-relay host` must not
# load the relay, its store and SQLAlchemy (tens of MiB in every connector process).
# Errors that become a one-line message: (module, class names). A class whose module was
# never imported cannot have been raised, so _fail_cleanly looks them up in sys.modules.
_CLEAN_ERRORS = (
    ("agent_relay.relay.config", ("ConfigError",)),
    ("agent_relay.relay.auth", ("SecretError", "AuthError")),
    ("agent_relay.store.errors", ("StoreError",)),
    ("agent_relay.webrtc.peer", ("WebRtcUnavailable",)),
)


def _fail_cleanly(func: Callable[P, R]) -> Callable[P, R]:
    """Known errors become a one-line message and exit status 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (PermissionError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            if isinstance(exc, _clean_errors()):
                raise click.ClickException(str(exc)) from None
            raise

    return wrapper


def _clean_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module_name, names in _CLEAN_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None:
            found += [getattr(module, name) for name in names]
    return tuple(found)


def _run(coro: Awaitable[R]) -> R:
    async def main() -> R:
        return await coro

    return asyncio.run(main())


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("websockets", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def default_data_dir() -> Path:
    return Path(os.environ.get("AGENT_RELAY_DATA_DIR") or platformdirs.user_data_dir("agent-relay"))


def resolve_secret(secret_file: Path | None, data_dir: Path, *, create: bool) -> JwtSecret:
    """The JWT secret: the environment, else a file, else (stand-alone) one kept in the
    data dir, made on first start."""
    from .keyfile import read_secret_file, write_secret_file
    from .relay.auth import JwtSecret, SecretError

    if os.environ.get(SECRET_ENV):
        return JwtSecret.from_environment()
    if secret_file is not None:
        return JwtSecret.from_base64(
            read_secret_file(secret_file).decode("ascii", "replace"), name=str(secret_file)
        )
    kept = data_dir / SECRET_FILE_NAME
    if kept.exists():
        return JwtSecret.from_base64(
            read_secret_file(kept).decode("ascii", "replace"), name=str(kept)
        )
    if not create:
        raise SecretError(
            f"no JWT secret: set {SECRET_ENV}, pass --jwt-secret-file, or start the relay once "
            f"to create {kept}"
        )
    secret = JwtSecret.generate()
    write_secret_file(kept, (secret.to_base64() + "\n").encode())
    return secret


def parse_ttl(value: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
    if not match:
        raise click.BadParameter("use a number with s, m, h or d, for example 30d or 12h")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return timedelta(seconds=int(match.group(1)) * unit)


# ------------------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agent-relay")
def main() -> None:
    """agent-relay: reach a local agent server through a relay it dials out to."""


def _server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--listen",
            envvar="RELAY_LISTEN_ADDR",
            default="0.0.0.0:8082",
            show_default=True,
            help="host:port to listen on [env: RELAY_LISTEN_ADDR]",
        ),
        click.option(
            "--database-url",
            envvar=DATABASE_ENV,
            default=None,
            help="postgresql://… or a SQLite path [env: SERVER_DATABASE_URL, "
            "DATABASE_URL]; default: SQLite in the data dir",
        ),
        click.option(
            "--data-dir",
            type=click.Path(path_type=Path),
            default=None,
            help="where stand-alone state lives [env: AGENT_RELAY_DATA_DIR]",
        ),
        click.option(
            "--jwt-secret-file",
            type=click.Path(path_type=Path, exists=True),
            default=None,
            help=f"file holding the base64 secret [else env: {SECRET_ENV}]",
        ),
        click.option(
            "--max-streams-per-host",
            type=click.IntRange(1, 100_000),
            default=256,
            show_default=True,
            help="concurrent proxied requests per host (then 503)",
        ),
        click.option(
            "--max-head-size",
            type=click.IntRange(1024, 1024 * 1024),
            default=16 * 1024,
            show_default=True,
            help="largest request head, bytes",
        ),
        click.option(
            "--response-timeout",
            type=click.FloatRange(0.1),
            default=60.0,
            show_default=True,
            help="seconds for a host to start answering (then 504)",
        ),
        click.option(
            "--idle-timeout",
            type=click.FloatRange(0.1),
            default=300.0,
            show_default=True,
            help="longest pause inside a body, seconds",
        ),
        click.option(
            "--total-timeout",
            type=click.FloatRange(0.1),
            default=None,
            help="longest proxied exchange, seconds (default: none)",
        ),
        click.option(
            "--shutdown-timeout",
            type=click.FloatRange(0),
            default=25.0,
            show_default=True,
            help="seconds in-flight requests get on SIGTERM",
        ),
        click.option("-v", "--verbose", is_flag=True, help="debug logging"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _serve(
    *,
    shared: bool,
    require_secret: bool,
    listen: str,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
    max_streams_per_host: int,
    max_head_size: int,
    response_timeout: float,
    idle_timeout: float,
    total_timeout: float | None,
    shutdown_timeout: float,
    verbose: bool,
) -> None:
    _setup_logging(verbose)
    from .relay.auth import SecretError
    from .relay.config import RelayConfig, parse_listen_addr
    from .relay.service import RelayService, run_until_signalled
    from .store import Store, StoreMode

    host, port = parse_listen_addr(listen)
    data_dir = data_dir or default_data_dir()
    if require_secret and not os.environ.get(SECRET_ENV) and jwt_secret_file is None:
        raise SecretError(f"{SECRET_ENV} must be set (standard base64, at least 32 bytes)")
    secret = resolve_secret(jwt_secret_file, data_dir, create=not shared)
    config = RelayConfig(
        listen_host=host,
        listen_port=port,
        database_url=database_url,
        shared_database=shared,
        jwt_secret=secret,
        max_head_size=max_head_size,
        max_streams_per_host=max_streams_per_host,
        response_timeout=response_timeout,
        idle_timeout=idle_timeout,
        total_timeout=total_timeout,
        shutdown_timeout=shutdown_timeout,
    )

    async def serve() -> None:
        mode = StoreMode.SHARED if shared else StoreMode.STANDALONE
        store = await Store.open(database_url, mode=mode, data_dir=data_dir)
        await run_until_signalled(RelayService(config, store))

    _run(serve())


@main.command()
@_server_options
@click.option(
    "--shared",
    is_flag=True,
    help="use a database the remote API owns: read its users, never change its schema",
)
@_fail_cleanly
def server(shared: bool, **options: Any) -> None:
    """Run the relay (stand-alone on SQLite unless given a database URL)."""
    _serve(shared=shared, require_secret=False, **options)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_server_options
@click.option(
    "--standalone",
    is_flag=True,
    help="own the database (create and migrate the tables) instead of sharing it",
)
@_fail_cleanly
def relay_server(standalone: bool, **options: Any) -> None:
    """The relay as a drop-in for the reference relay-server sidecar: configured by
    RELAY_LISTEN_ADDR, SERVER_DATABASE_URL (or DATABASE_URL) and
    VIBEKANBAN_REMOTE_JWT_SECRET, on the remote API's database."""
    from .relay.config import ConfigError

    if not options.get("database_url") and not standalone:
        raise ConfigError("SERVER_DATABASE_URL (or DATABASE_URL) must be set")
    _serve(shared=not standalone, require_secret=True, **options)


def _admin_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--jwt-secret-file", type=click.Path(path_type=Path, exists=True), default=None
    )(func)
    func = click.option("--data-dir", type=click.Path(path_type=Path), default=None)(func)
    func = click.option("--database-url", envvar=DATABASE_ENV, default=None)(func)
    return func


@main.group()
def users() -> None:
    """Stand-alone user accounts."""


@users.command("add")
@click.argument("name")
@_admin_options
@_fail_cleanly
def users_add(
    name: str, database_url: str | None, data_dir: Path | None, jwt_secret_file: Path | None
) -> None:
    """Create the user NAME."""
    from .store import Store

    async def add() -> None:
        async with await Store.open(database_url, data_dir=data_dir or default_data_dir()) as store:
            user = await store.add_user(name)
            click.echo(f"added user {user.username} ({user.id})", err=True)

    _run(add())


@users.command("list")
@_admin_options
@_fail_cleanly
def users_list(
    database_url: str | None, data_dir: Path | None, jwt_secret_file: Path | None
) -> None:
    """List the users."""
    from .store import Store

    async def show() -> None:
        async with await Store.open(database_url, data_dir=data_dir or default_data_dir()) as store:
            for user in await store.list_users():
                click.echo(f"{user.username}\t{user.id}\t{user.created_at.isoformat()}")

    _run(show())


@main.group()
def tokens() -> None:
    """Tokens that hosts and clients present to the relay."""


@tokens.command("issue")
@click.argument("user")
@click.option("--ttl", default="30d", show_default=True, help="lifetime: 3600, 15m, 12h, 30d")
@_admin_options
@_fail_cleanly
def tokens_issue(
    user: str,
    ttl: str,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
) -> None:
    """Print a new token for USER (a name or id) on stdout."""
    from .relay.auth import issue_token
    from .store import Store

    lifetime = parse_ttl(ttl)
    data_dir = data_dir or default_data_dir()
    secret = resolve_secret(jwt_secret_file, data_dir, create=True)

    async def issue() -> None:
        async with await Store.open(database_url, data_dir=data_dir) as store:
            record = await store.get_user(user)
            if record is None:
                raise click.ClickException(
                    f"no user {user!r} (add one: agent-relay users add NAME)"
                )
            issued = await issue_token(store, secret, record.id, lifetime)
            click.echo(issued.token)
            click.echo(
                f"expires {issued.expires_at.isoformat()}; session {issued.auth_session_id}",
                err=True,
            )

    _run(issue())


@tokens.command("revoke")
@click.argument("token", required=False)
@click.option("--user", default=None, help="revoke every token of this user")
@click.option("--session", "session_id", default=None, help="revoke one auth session by id")
@_admin_options
@_fail_cleanly
def tokens_revoke(
    token: str | None,
    user: str | None,
    session_id: str | None,
    database_url: str | None,
    data_dir: Path | None,
    jwt_secret_file: Path | None,
) -> None:
    """Revoke TOKEN, or --session ID, or every token of --user NAME."""
    from .relay.auth import session_id_of_token
    from .store import Store

    if sum(x is not None for x in (token, user, session_id)) != 1:
        raise click.UsageError("give exactly one of TOKEN, --user or --session")
    data_dir = data_dir or default_data_dir()

    async def revoke() -> None:
        async with await Store.open(database_url, data_dir=data_dir) as store:
            if user is not None:
                record = await store.get_user(user)
                if record is None:
                    raise click.ClickException(f"no user {user!r}")
                revoked = await store.revoke_user_auth_sessions(record.id)
                click.echo(f"revoked {len(revoked)} session(s) of {record.username}", err=True)
                return
            if token is not None:
                secret = resolve_secret(jwt_secret_file, data_dir, create=False)
                target = session_id_of_token(secret, token)
            else:
                try:
                    target = uuid.UUID(str(session_id))
                except ValueError:
                    raise click.BadParameter("not a session id", param_hint="--session") from None
            if not await store.revoke_auth_session(target):
                raise click.ClickException(f"no active session {target}")
            click.echo(f"revoked session {target}", err=True)

    _run(revoke())


@main.group("host", invoke_without_command=True)
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
    "--max-upstream-connections",
    type=click.IntRange(1, 100_000),
    default=64,
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
    default=55.0,
    show_default=True,
    help="seconds for the local server to start answering (then 502)",
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
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@_fail_cleanly
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
    max_upstream_connections: int,
    upstream_idle_timeout: float,
    response_timeout: float,
    shutdown_timeout: float,
    allow_unsigned: bool,
    trusted_keys_file: Path | None,
    p2p: bool,
    stun: tuple[str, ...],
    turn: tuple[str, ...],
    verbose: bool,
) -> None:
    """Connect the local agent server to a relay: dial out, serve what the relay sends.

    Relayed requests must be signed by a paired client (see `host pair-code`), and the
    answers are signed, unless --allow-unsigned."""
    from .host.connector import Connector, ConnectorConfig
    from .host.forward import ForwardLimits
    from .host.identity import default_name, load_machine_id
    from .host.service import parse_host_port
    from .host.service import run_until_signalled as run_host_until_signalled
    from .host.tokens import CommandToken, FileToken, StaticToken
    from .host.upstream import PoolLimits, UpstreamPool, UpstreamTarget
    from .trust.host import TrustHost

    if click.get_current_context().invoked_subcommand is not None:
        return
    if relay_url is None:
        raise click.UsageError("--relay (or VK_SHARED_RELAY_API_BASE) is required")
    if upstream is None:
        raise click.UsageError("--upstream (or AGENT_RELAY_UPSTREAM) is required")
    source = click.get_current_context().get_parameter_source("token")
    from_environment = source is click.core.ParameterSource.ENVIRONMENT
    if from_environment and (token_file is not None or token_command is not None):
        token = None  # an explicit option wins over the environment
    if sum(x is not None for x in (token, token_file, token_command)) != 1:
        raise click.UsageError("give exactly one of --token, --token-file or --token-command")
    tokens: TokenSource
    if token_file is not None:
        tokens = FileToken(token_file)
    elif token_command is not None:
        tokens = CommandToken(token_command)
    else:
        tokens = StaticToken(str(token))
    target = UpstreamTarget.parse(upstream)
    listen = parse_host_port(status_listen, "--status-listen") if status_listen else None
    data_dir = data_dir or default_data_dir()
    trust = None if allow_unsigned else TrustHost(data_dir, trusted_keys_file=trusted_keys_file)
    config = ConnectorConfig(
        relay_url=relay_url,
        machine_id=load_machine_id(data_dir),
        name=name or default_name(),
        shutdown_timeout=shutdown_timeout,
        forward=ForwardLimits(response_timeout=response_timeout),
        ca_file=ca_file,
    )
    limits = PoolLimits(
        max_connections=max_upstream_connections,
        # Idle ones are kept up to the limit: a busy connector would otherwise open a
        # new connection for a good part of its requests.
        max_idle=max_upstream_connections,
        idle_timeout=upstream_idle_timeout,
    )
    _setup_logging(verbose)

    async def serve() -> None:
        pool = UpstreamPool(target, limits)
        webrtc = None
        if p2p and trust is not None:  # p2p: a channel needs the signed session
            from .webrtc.run import host_answerer, ice_servers

            webrtc = host_answerer(trust, target.url, ice_servers(stun, turn))
        connector = Connector(config, tokens, pool, trust=trust, webrtc=webrtc)
        await run_host_until_signalled(connector, pool, status_listen=listen)

    if trust is None:
        logging.getLogger(__name__).warning(
            "--allow-unsigned: relayed requests are forwarded without signature checks"
        )
    _run(serve())


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
@_fail_cleanly
def host_pair_code(data_dir: Path | None, ttl: float) -> None:
    """Make a one-time pairing code for a client to pair with this host.

    It goes to the data dir, where a running connector reads it when a pairing starts;
    a new code replaces the previous one."""
    from .trust.host import TrustHost
    from .trust.limits import TrustLimits

    limits = TrustLimits(code_ttl=ttl * 60)
    trust = TrustHost(data_dir or default_data_dir(), limits=limits)
    code = trust.issue_code()
    minutes = round((code.expires_at - time.time()) / 60)
    click.echo(code.code)
    click.echo(f"valid for {minutes} min, for one pairing attempt", err=True)


@host_command.group("clients")
def host_clients() -> None:
    """The clients paired with this host."""


@host_clients.command("list")
@_host_data_dir
@_host_keys_file
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_fail_cleanly
def host_clients_list(data_dir: Path | None, trusted_keys_file: Path | None, as_json: bool) -> None:
    """List paired clients."""
    from .trust.host import TrustHost

    trust = TrustHost(data_dir or default_data_dir(), trusted_keys_file=trusted_keys_file)
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
@_fail_cleanly
def host_clients_revoke(
    client_id: str, data_dir: Path | None, trusted_keys_file: Path | None
) -> None:
    """Revoke a paired client: a running connector ends its sessions and closes its
    WebSockets within a second."""
    from .trust.host import TrustHost

    trust = TrustHost(data_dir or default_data_dir(), trusted_keys_file=trusted_keys_file)
    if not trust.revoke(client_id):
        raise click.ClickException(f"no paired client {client_id}")
    click.echo(f"revoked {client_id}", err=True)


@main.command("doctor")
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
@_fail_cleanly
def doctor_command(
    relay_url: str,
    token: str | None,
    token_file: Path | None,
    host_id: str | None,
    ca_file: Path | None,
    timeout: float,
) -> None:
    """Check a relay from the outside: DNS, TCP, TLS, /health, that /v1/relay is not
    behind a login proxy, the token, and a host. Exit status 1 when something is wrong."""
    from .doctor import Options, diagnose, format_report, read_token

    options = Options(
        relay_url=relay_url,
        token=read_token(token, token_file),
        host_id=host_id,
        ca_file=ca_file,
        timeout=timeout,
    )
    report = _run(diagnose(options))
    click.echo(format_report(report, color=sys.stdout.isatty()))
    if report.failed:
        sys.exit(1)


# ------------------------------------------------------------------ client verbs


def _client_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options every client verb shares, and client errors as one-line messages."""
    options = [
        click.option(
            "--relay",
            "relay_url",
            envvar="AGENT_RELAY_URL",
            default=None,
            metavar="URL",
            help="the relay's base URL [env: AGENT_RELAY_URL]",
        ),
        click.option("--host", "host_id", default=None, metavar="HOST_ID", help="the host's id"),
        click.option(
            "--token",
            envvar="AGENT_RELAY_TOKEN",
            default=None,
            help="the relay token [env: AGENT_RELAY_TOKEN]",
        ),
        click.option(
            "--token-file",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="a file holding the relay token",
        ),
        click.option(
            "--data-dir",
            type=click.Path(path_type=Path),
            default=None,
            help="where pairings are kept [env: AGENT_RELAY_DATA_DIR]",
        ),
    ]
    for option in reversed(options):
        func = option(func)

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .client import ClientError
        from .host.tokens import TokenError

        try:
            return func(*args, **kwargs)
        except (ClientError, TokenError, PermissionError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _client_token(token: str | None, token_file: Path | None) -> str | None:
    """--token-file wins over a token from the environment; none is fine when a relay
    session is already stored."""
    from .host.tokens import FileToken, clean_token

    source = click.get_current_context().get_parameter_source("token")
    if token_file is not None:
        if token is not None and source is not click.core.ParameterSource.ENVIRONMENT:
            raise click.UsageError("give --token or --token-file, not both")
        return _run(FileToken(token_file).get())
    return clean_token(token, "--token") if token is not None else None


def _client_store(data_dir: Path | None) -> Any:
    from .client import KeyStore

    return KeyStore(data_dir or default_data_dir())


@main.command("pair")
@_client_command
@click.option("--code", required=True, help="the 6-character code the host shows")
@click.option("--name", default=None, help="this client's name, as the host lists it")
def pair_command(
    relay_url: str | None,
    host_id: str | None,
    token: str | None,
    token_file: Path | None,
    data_dir: Path | None,
    code: str,
    name: str | None,
) -> None:
    """Pair with a host through a relay, using the code it shows
    (agent-relay host pair-code). Keys are kept in the data dir."""
    from .client import RelayClient

    if relay_url is None or host_id is None:
        raise click.UsageError("pair needs --relay URL and --host HOST_ID")
    relay_token = _client_token(token, token_file)
    if relay_token is None:
        raise click.UsageError(
            "pair needs a relay token: --token, --token-file or AGENT_RELAY_TOKEN"
        )
    store = _client_store(data_dir)
    pairing = _run(
        RelayClient.pair(relay_url, host_id, code, token=relay_token, store=store, client_name=name)
    )
    click.echo(
        f"paired with host {pairing.host_id} at {pairing.relay_url} as client "
        f"{pairing.client_id}; keys in {store.path_for(pairing.relay_url, pairing.host_id)}",
        err=True,
    )


@main.command("request")
@click.argument("method_and_path", nargs=-1, required=True, metavar="[METHOD] PATH")
@_client_command
@click.option(
    "--data",
    "-d",
    default=None,
    help="the request body: text, @FILE, or - for standard input (default method: POST)",
)
@click.option("--header", "-H", "headers", multiple=True, help="an extra header, 'Name: value'")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="write the body to FILE (only once all of it verified)",
)
@click.option(
    "--p2p", is_flag=True, help="try a WebRTC data channel first (needs agent-relay[webrtc])"
)
@click.option("--stun", multiple=True, help="a STUN server HOST:PORT for --p2p (none by default)")
@click.option("--turn", multiple=True, help="a TURN server USER:PASS@HOST:PORT for --p2p")
@click.option("--include", "-i", is_flag=True, help="print the status and headers on stderr")
def request_command(
    method_and_path: tuple[str, ...],
    relay_url: str | None,
    host_id: str | None,
    token: str | None,
    token_file: Path | None,
    data_dir: Path | None,
    data: str | None,
    headers: tuple[str, ...],
    output: Path | None,
    p2p: bool,
    stun: tuple[str, ...],
    turn: tuple[str, ...],
    include: bool,
) -> None:
    """Send a signed request to a paired host through the relay and print the verified
    answer. Exits non-zero when the answer is 4xx/5xx, refused, or fails verification
    (then nothing unverified is printed)."""
    from .client.cli import run_request

    if len(method_and_path) > 2:
        raise click.UsageError("give at most METHOD and PATH")
    path = method_and_path[-1]
    method = method_and_path[0] if len(method_and_path) == 2 else ("POST" if data else "GET")
    store = _client_store(data_dir)
    pairing = store.find(relay_url, host_id)
    if p2p:
        from .webrtc.run import ice_servers, run_p2p_request

        run_request = functools.partial(run_p2p_request, servers=ice_servers(stun, turn))
    status = _run(
        run_request(
            pairing,
            store,
            _client_token(token, token_file),
            method,
            path,
            body=_read_data(data),
            headers=_parse_headers(headers),
            output=output,
            include=include,
        )
    )
    if status >= 400:
        raise click.ClickException(f"the host answered {status}")


@main.command("ws")
@click.argument("path")
@_client_command
@click.option(
    "--linger",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="seconds to keep reading after the end of standard input, then close",
)
def ws_command(
    path: str,
    relay_url: str | None,
    host_id: str | None,
    token: str | None,
    token_file: Path | None,
    data_dir: Path | None,
    linger: float,
) -> None:
    """Open a signed WebSocket to PATH on a paired host: each line of standard input is
    sent as a text frame, each verified frame from the host is printed as a line."""
    from .client.cli import run_ws

    store = _client_store(data_dir)
    pairing = store.find(relay_url, host_id)
    code = _run(run_ws(pairing, store, _client_token(token, token_file), path, linger))
    if code not in (1000, 1005):
        raise click.ClickException(f"the host closed the WebSocket with code {code}")


def _read_data(data: str | None) -> bytes:
    if data is None:
        return b""
    if data == "-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {data[1:]}: {exc.strerror}") from None
    return data.encode()


def _parse_headers(headers: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"not 'Name: value': {header!r}", param_hint="--header")
        parsed[name.strip().lower()] = value.strip()
    return parsed


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8082,
    show_default=True,
    help="the relay's port on 127.0.0.1 (0: any free port)",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="where the demo keeps its state [default: <data dir>/demo]",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="let the host answer unsigned requests, to browse through the relay with curl "
    "or a plain browser (the trust layer off, as `host --allow-unsigned`)",
)
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@_fail_cleanly
def demo(port: int, data_dir: Path | None, allow_unsigned: bool, verbose: bool) -> None:
    """Run the relay, a sample agent server and a connected host, all on this machine.

    The host checks signatures: pair a client with the printed code, then call through
    the relay with `agent-relay request`."""
    from .demo.run import run_demo

    _setup_logging(verbose)
    try:
        _run(
            run_demo(
                data_dir or default_data_dir() / "demo", port=port, allow_unsigned=allow_unsigned
            )
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot start the demo: {exc} (is port {port} in use? try --port 0)"
        ) from None


if __name__ == "__main__":
    main()

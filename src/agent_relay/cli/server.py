"""``agent-relay server`` and ``relay-server``: run the relay."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import __version__
from .common import (
    DATABASE_ENV,
    SECRET_ENV,
    config_option,
    default_data_dir,
    event_loop_option,
    fail_cleanly,
    is_listen_error,
    listen_failure,
    log_format_option,
    option_source,
    run,
    setup_logging,
)
from .common import data_dir as make_data_dir


def server_options(func: Callable[..., Any]) -> Callable[..., Any]:
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
            default=512,
            show_default=True,
            help="concurrent proxied requests per host (then 503)",
        ),
        click.option(
            "--max-head-size",
            type=click.IntRange(1024, 16 * 1024 * 1024),
            default=128 * 1024,
            show_default=True,
            help="largest request head from a client, bytes (then 431)",
        ),
        click.option(
            "--max-response-head-size",
            type=click.IntRange(1024, 16 * 1024 * 1024),
            default=128 * 1024,
            show_default=True,
            help="largest response head from a host, bytes (then 502)",
        ),
        click.option(
            "--response-timeout",
            type=click.FloatRange(0.1),
            default=600.0,
            show_default=True,
            help="seconds for a host to start answering (then 504); bodies: --idle-timeout",
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
            "--buffer-budget-mib",
            envvar="AGENT_RELAY_BUFFER_BUDGET_MIB",
            type=click.IntRange(1, 1 << 20),
            default=32,
            show_default=True,
            help="MiB all hosts together may have in the relay's receive buffers; "
            "windows shrink as it fills [env: AGENT_RELAY_BUFFER_BUDGET_MIB]",
        ),
        click.option(
            "--shutdown-timeout",
            type=click.FloatRange(0),
            default=25.0,
            show_default=True,
            help="seconds in-flight requests get on SIGTERM",
        ),
        click.option(
            "--replica-address",
            envvar="AGENT_RELAY_REPLICA_ADDRESS",
            default=None,
            help="one of several replicas on one PostgreSQL: host:port where the other "
            "replicas reach this one's link, e.g. $(POD_IP):8083 "
            "[env: AGENT_RELAY_REPLICA_ADDRESS] (docs/replicas.md)",
        ),
        click.option(
            "--replica-listen",
            envvar="AGENT_RELAY_REPLICA_LISTEN",
            default="0.0.0.0:8083",
            show_default=True,
            help="host:port of the replica link (never the public port) "
            "[env: AGENT_RELAY_REPLICA_LISTEN]",
        ),
        click.option(
            "--replica-ttl",
            envvar="AGENT_RELAY_REPLICA_TTL",
            type=click.FloatRange(0.5, 300),
            default=4.0,
            show_default=True,
            help="seconds without a heartbeat before a replica's hosts are marked offline",
        ),
        click.option(
            "--create-own-tables",
            envvar="AGENT_RELAY_CREATE_OWN_TABLES",
            is_flag=True,
            help="shared mode: create agent-relay's own tables (host key pins) if missing; "
            "the remote API's tables are never changed [env: AGENT_RELAY_CREATE_OWN_TABLES]",
        ),
        click.option(
            "--send-timeout",
            type=click.FloatRange(0.1),
            default=60.0,
            show_default=True,
            help="seconds a write to a client may make no progress (then it is cut)",
        ),
        click.option(
            "--trusted-proxies",
            envvar="AGENT_RELAY_TRUSTED_PROXIES",
            default=None,
            metavar="CIDR,…",
            help="peers whose X-Forwarded-For is believed, comma-separated "
            "[env: AGENT_RELAY_TRUSTED_PROXIES]",
        ),
        click.option(
            "--max-hosts-per-user",
            type=click.IntRange(1),
            envvar="AGENT_RELAY_MAX_HOSTS_PER_USER",
            default=100,
            show_default=True,
            help="hosts one user may register (then 403) [env: AGENT_RELAY_MAX_HOSTS_PER_USER]",
        ),
        click.option(
            "--max-sessions-per-user",
            type=click.IntRange(1),
            envvar="AGENT_RELAY_MAX_SESSIONS_PER_USER",
            default=1000,
            show_default=True,
            help="live relay sessions of one user (then 429) "
            "[env: AGENT_RELAY_MAX_SESSIONS_PER_USER]",
        ),
        click.option(
            "--session-idle-timeout",
            type=click.FloatRange(1),
            envvar="AGENT_RELAY_SESSION_IDLE_TIMEOUT",
            default=86400.0,
            show_default=True,
            help="seconds a relay session may go unused before it is refused "
            "[env: AGENT_RELAY_SESSION_IDLE_TIMEOUT]",
        ),
        click.option(
            "--access-log",
            is_flag=True,
            envvar="AGENT_RELAY_ACCESS_LOG",
            help="log one line per proxied request: method, host, path (no query, no "
            "session id), status, bytes, duration [env: AGENT_RELAY_ACCESS_LOG=1]",
        ),
        click.option(
            "--metrics-listen",
            envvar="AGENT_RELAY_METRICS_LISTEN",
            default=None,
            metavar="HOST:PORT",
            help="serve /metrics there instead of on the public port, e.g. 127.0.0.1:9090 "
            "[env: AGENT_RELAY_METRICS_LISTEN]",
        ),
        log_format_option,
        click.option("-v", "--verbose", is_flag=True, help="debug logging"),
        event_loop_option,
        config_option,
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
    max_response_head_size: int,
    response_timeout: float,
    idle_timeout: float,
    total_timeout: float | None,
    shutdown_timeout: float,
    replica_address: str | None,
    replica_listen: str,
    replica_ttl: float,
    create_own_tables: bool,
    send_timeout: float,
    trusted_proxies: str | None,
    max_hosts_per_user: int,
    max_sessions_per_user: int,
    session_idle_timeout: float,
    access_log: bool,
    metrics_listen: str | None,
    log_format: str,
    buffer_budget_mib: int,
    verbose: bool,
    event_loop: str,
) -> None:
    setup_logging(verbose, log_format)
    from ..relay.config import ConfigError, RelayConfig, ReplicaConfig, parse_listen_addr
    from ..relay.forwarding import parse_trusted_proxies
    from ..relay.limits import UserLimits
    from ..relay.secret import require_secret as check_secret_given
    from ..relay.secret import resolve_secret
    from ..relay.service import MetricsListenError, RelayService, run_until_signalled
    from ..store import Store, StoreMode

    where = option_source("listen", "--listen", "RELAY_LISTEN_ADDR")
    host, port = parse_listen_addr(listen, where)
    metrics_where = option_source(
        "metrics_listen", "--metrics-listen", "AGENT_RELAY_METRICS_LISTEN"
    )
    metrics_address = (
        parse_listen_addr(metrics_listen, metrics_where) if metrics_listen is not None else None
    )
    # Shared mode keeps nothing on disk: a read-only container needs no data dir.
    data_dir = make_data_dir(data_dir) if data_dir or not shared else default_data_dir()
    if require_secret:
        check_secret_given(jwt_secret_file)
    secret = resolve_secret(jwt_secret_file, data_dir, create=not shared)
    replica = None
    if replica_address:
        parse_listen_addr(replica_address, "--replica-address")
        if not database_url or "://" not in database_url or database_url.startswith("sqlite"):
            raise ConfigError(
                "--replica-address: several replicas need one PostgreSQL database; a relay "
                "on SQLite is a single replica (unset AGENT_RELAY_REPLICA_ADDRESS)"
            )
        link_host, link_port = parse_listen_addr(replica_listen, "--replica-listen")
        if link_port == port and port != 0:
            raise ConfigError("--replica-listen must not be the public --listen port")
        replica = ReplicaConfig(
            advertise=replica_address,
            listen_host=link_host,
            listen_port=link_port,
            heartbeat=replica_ttl / 4,
            ttl=replica_ttl,
        )
    config = RelayConfig(
        listen_host=host,
        listen_port=port,
        database_url=database_url,
        shared_database=shared,
        jwt_secret=secret,
        max_head_size=max_head_size,
        max_response_head=max_response_head_size,
        max_streams_per_host=max_streams_per_host,
        response_timeout=response_timeout,
        idle_timeout=idle_timeout,
        total_timeout=total_timeout,
        shutdown_timeout=shutdown_timeout,
        replica=replica,
        send_timeout=send_timeout,
        trusted_proxies=parse_trusted_proxies(trusted_proxies),
        limits=UserLimits(
            max_hosts_per_user=max_hosts_per_user,
            max_sessions_per_user=max_sessions_per_user,
            session_idle_timeout=session_idle_timeout,
        ),
        access_log=access_log,
        metrics_listen=metrics_address,
        buffer_budget=buffer_budget_mib * 1024 * 1024,
    )

    async def serve() -> None:
        mode = StoreMode.SHARED if shared else StoreMode.STANDALONE
        store = await Store.open(
            database_url, mode=mode, data_dir=data_dir, create_own=create_own_tables
        )
        # Closed also when the start fails (a port in use): its SQLite connections are
        # threads that would keep the process from exiting. (Closing twice is harmless.)
        try:
            if not store.host_keys_enabled:
                logging.getLogger("agent_relay.relay").warning(
                    "host key binding is off: the database has no agent_relay_host_keys "
                    "table, so a token of a host's user can take over its tunnel; create it "
                    "with `agent-relay migrate --database-url … --grant-to USER` as the "
                    "tables' owner, or start with --create-own-tables "
                    "(AGENT_RELAY_CREATE_OWN_TABLES=1)"
                )
            await run_until_signalled(RelayService(config, store))
        finally:
            await store.close()

    try:
        run(serve(), event_loop=event_loop)
    except MetricsListenError as exc:
        assert metrics_listen is not None
        raise listen_failure(exc.cause, metrics_listen, metrics_where) from None
    except OSError as exc:
        if not is_listen_error(exc):
            raise
        raise listen_failure(exc, listen, where) from None


@click.command()
@server_options
@click.option(
    "--shared",
    is_flag=True,
    help="use a database the remote API owns: read its users, never change its schema",
)
@fail_cleanly
def server(shared: bool, **options: Any) -> None:
    """Run the relay (stand-alone on SQLite unless given a database URL)."""
    _serve(shared=shared, require_secret=False, **options)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="relay-server")
@server_options
@click.option(
    "--standalone",
    is_flag=True,
    help="own the database (create and migrate the tables) instead of sharing it",
)
@fail_cleanly
def relay_server(standalone: bool, **options: Any) -> None:
    """The relay as a drop-in for the reference relay-server sidecar: configured by
    RELAY_LISTEN_ADDR, SERVER_DATABASE_URL (or DATABASE_URL) and
    VIBEKANBAN_REMOTE_JWT_SECRET, on the remote API's database."""
    from ..relay.config import ConfigError

    if not options.get("database_url") and not standalone:
        raise ConfigError("SERVER_DATABASE_URL (or DATABASE_URL) must be set")
    _serve(shared=not standalone, require_secret=True, **options)


@click.command()
@click.option(
    "--database-url",
    envvar=DATABASE_ENV,
    required=True,
    help="the PostgreSQL the replicas share [env: SERVER_DATABASE_URL, DATABASE_URL]",
)
@click.option(
    "--replicas",
    "replicas",
    is_flag=True,
    help="also create the replica presence tables (needed by several replicas)",
)
@click.option(
    "--grant-to",
    default=None,
    help="the relay's database user, given what it needs on those tables",
)
@fail_cleanly
def migrate(database_url: str, replicas: bool, grant_to: str | None) -> None:
    """Create what the relay keeps of its own in a shared database: the host key pins
    and, with --replicas, the replica presence tables (never a table of the remote
    API's). Idempotent; run once as a user that may create tables."""
    from ..store import Store, StoreMode
    from ..store.presence import PRESENCE_TABLE, REPLICAS_TABLE, grant_host_keys, migrate_presence

    async def own_tables() -> None:
        store = await Store.open(database_url, mode=StoreMode.SHARED, create_own=True)
        await store.close()
        if grant_to is not None:
            await grant_host_keys(database_url, grant_to)

    run(own_tables())
    click.echo("agent_relay_host_keys is in place")
    if not replicas:
        return
    missing = run(migrate_presence(database_url, grant_to))
    if missing:
        click.echo(f"created {', '.join(missing)}")
    else:
        click.echo(f"{REPLICAS_TABLE} and {PRESENCE_TABLE} are in place already")

"""``agent-relay server`` and ``relay-server``: run the relay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import __version__
from .common import (
    DATABASE_ENV,
    SECRET_ENV,
    default_data_dir,
    fail_cleanly,
    is_listen_error,
    listen_failure,
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
            default=256,
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
    max_response_head_size: int,
    response_timeout: float,
    idle_timeout: float,
    total_timeout: float | None,
    shutdown_timeout: float,
    buffer_budget_mib: int,
    verbose: bool,
) -> None:
    setup_logging(verbose)
    from ..relay.config import RelayConfig, parse_listen_addr
    from ..relay.secret import require_secret as check_secret_given
    from ..relay.secret import resolve_secret
    from ..relay.service import RelayService, run_until_signalled
    from ..store import Store, StoreMode

    where = option_source("listen", "--listen", "RELAY_LISTEN_ADDR")
    host, port = parse_listen_addr(listen, where)
    # Shared mode keeps nothing on disk: a read-only container needs no data dir.
    data_dir = make_data_dir(data_dir) if data_dir or not shared else default_data_dir()
    if require_secret:
        check_secret_given(jwt_secret_file)
    secret = resolve_secret(jwt_secret_file, data_dir, create=not shared)
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
        buffer_budget=buffer_budget_mib * 1024 * 1024,
    )

    async def serve() -> None:
        mode = StoreMode.SHARED if shared else StoreMode.STANDALONE
        store = await Store.open(database_url, mode=mode, data_dir=data_dir)
        await run_until_signalled(RelayService(config, store))

    try:
        run(serve())
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

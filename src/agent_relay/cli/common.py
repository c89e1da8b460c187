"""What every verb group shares: errors as one-line messages, the event loop, logging and
the default data dir."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from click.core import ParameterSource

from .. import logredact
from ..errors import AgentRelayError

P = ParamSpec("P")
R = TypeVar("R")

DATABASE_ENV = ["SERVER_DATABASE_URL", "DATABASE_URL"]
# relay.auth.SECRET_ENV, spelled out so that the help text needs no import of the relay.
SECRET_ENV = "VIBEKANBAN_REMOTE_JWT_SECRET"  # noqa: S105 - a variable name, not a secret


def fail_cleanly(func: Callable[P, R]) -> Callable[P, R]:
    """Errors raised on purpose (and the OS refusing a file) become a one-line message
    and exit status 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (AgentRelayError, PermissionError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


EVENT_LOOP_ENV = "AGENT_RELAY_EVENT_LOOP"


# ``--event-loop`` for the long-running verbs (server, host).
event_loop_option = click.option(
    "--event-loop",
    type=click.Choice(["auto", "uvloop", "asyncio"]),
    envvar=EVENT_LOOP_ENV,
    default="auto",
    show_default=True,
    help="auto: uvloop where it is installed, else the standard asyncio loop "
    f"[env: {EVENT_LOOP_ENV}]",
)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop to run on: uvloop (libuv, C) costs the relay and the connector far
    less CPU per request than the pure-Python loop; None means asyncio's own."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise click.ClickException(
                "--event-loop uvloop: uvloop is not installed (pip install uvloop)"
            ) from None
        return None
    return uvloop.new_event_loop


def run(coro: Awaitable[R], *, event_loop: str = "asyncio") -> R:
    async def main() -> R:
        return await coro

    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        return runner.run(main())


def setup_logging(verbose: bool, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for noisy in ("websockets", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logredact.install()  # session ids never reach a log line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message; an access log line's fields
    (relay/accesslog.py) as fields of their own."""

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            document.update(access)
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="AGENT_RELAY_LOG_FORMAT",
    default="text",
    show_default=True,
    help="text lines, or one JSON object a line [env: AGENT_RELAY_LOG_FORMAT]",
)


def _load_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Reads the TOML file into the command's defaults: a flag, then its environment
    variable, still win over the file (click's default_map)."""
    if value is None:
        return None
    import tomllib

    try:
        settings = tomllib.loads(value.read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.BadParameter(f"cannot read {value}: {_reason(exc)}", param=param) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{value} is not valid TOML: {exc}", param=param) from None
    # A setting is named as its flag without the dashes (status-listen, or status_listen).
    known: dict[str, str] = {}
    for option in ctx.command.params:
        if not isinstance(option, click.Option) or option.name in (None, "config"):
            continue
        for flag in option.opts:
            if flag.startswith("--") and flag not in ("--help", "--version"):
                known[flag[2:]] = option.name
    defaults: dict[str, object] = {}
    for key, setting in settings.items():
        name = known.get(key.replace("_", "-"))
        if name is None:
            choices = ", ".join(sorted(known))
            raise click.BadParameter(
                f"{value}: unknown setting {key!r} (settings: {choices})", param=param
            )
        defaults[name] = setting
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    if "data_dir" in defaults and isinstance(ctx.command, click.Group):
        _share_data_dir(ctx.default_map, ctx.command, ctx, defaults["data_dir"])
    return value


def _share_data_dir(
    defaults: dict[str, Any], group: click.Group, ctx: click.Context, data_dir: object
) -> None:
    """A group's file gives its data dir to every subcommand that takes one (``host
    --config host.toml pair-code`` works on the connector's data dir)."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None:
            continue
        below = defaults.setdefault(name, {})
        if any(p.name == "data_dir" for p in command.params):
            below.setdefault("data_dir", data_dir)
        if isinstance(command, click.Group):
            _share_data_dir(below, command, ctx, data_dir)


config_option = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="AGENT_RELAY_CONFIG",
    default=None,
    is_eager=True,
    expose_value=False,
    callback=_load_config,
    help='a TOML file of settings, named as the flags (listen = "…"); a flag or its '
    "environment variable wins over the file [env: AGENT_RELAY_CONFIG]",
)


def default_data_dir() -> Path:
    given = os.environ.get("AGENT_RELAY_DATA_DIR")
    if given:
        return Path(given)
    import platformdirs  # only when no data dir is given: ~2 MB a connector need not hold

    return Path(platformdirs.user_data_dir("agent-relay"))


def data_dir(given: Path | None, *, default: Path | None = None) -> Path:
    """The data dir the user gave (or the default), created if need be (0700)."""
    path = given or default or default_data_dir()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        what = f"--data-dir {given}" if given is not None else f"the data dir {path}"
        raise click.ClickException(f"cannot create {what}: {_reason(exc)}") from None
    return path


def option_source(name: str, flag: str, envvar: str) -> str:
    """How the user set an option, to name it in a message: the flag or the variable."""
    source = click.get_current_context().get_parameter_source(name)
    return envvar if source is ParameterSource.ENVIRONMENT else flag


def listen_failure(exc: OSError, address: str, where: str) -> click.ClickException:
    """A listening socket that could not be opened, as one line."""
    return click.ClickException(f"cannot listen on {address} ({where}): {_reason(exc)}")


def is_listen_error(exc: OSError) -> bool:
    return exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)

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
from typing import ParamSpec, TypeVar

import click
import platformdirs
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


def run(coro: Awaitable[R]) -> R:
    async def main() -> R:
        return await coro

    return asyncio.run(main())


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("websockets", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logredact.install()  # session ids never reach a log line


def default_data_dir() -> Path:
    return Path(os.environ.get("AGENT_RELAY_DATA_DIR") or platformdirs.user_data_dir("agent-relay"))


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

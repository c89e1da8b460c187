"""What every verb group shares: errors as one-line messages, the event loop, logging and
the default data dir."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import click
import platformdirs

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


def default_data_dir() -> Path:
    return Path(os.environ.get("AGENT_RELAY_DATA_DIR") or platformdirs.user_data_dir("agent-relay"))

"""The ``agent-relay`` command line, and the reference-compatible ``relay-server``.

One module per verb group; a group's module is imported only when one of its commands
runs (or help lists it), and each command imports what it runs inside its function:
``agent-relay host`` must not load the relay, its store and the database drivers (MiB in
every connector process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .. import __version__, _native
from .lazy import LazyGroup

if TYPE_CHECKING:
    from .server import relay_server as relay_server

# command name -> "module:attribute", modules relative to this package.
COMMANDS = {
    "server": "server:server",
    "migrate": "server:migrate",
    "users": "admin:users",
    "tokens": "admin:tokens",
    "hosts": "admin:hosts",
    "pairings": "client:pairings",
    "host": "host:host_command",
    "doctor": "doctor:doctor_command",
    "pair": "client:pair_command",
    "request": "client:request_command",
    "ws": "client:ws_command",
    "demo": "demo:demo",
}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(
    __version__,
    prog_name="agent-relay",
    message=f"%(prog)s, version %(version)s\ncore: {_native.description}",
)
def main() -> None:
    """agent-relay: reach a local agent server through a relay it dials out to."""


def __getattr__(name: str) -> Any:
    # `relay-server = agent_relay.cli:relay_server` (and tests) reach it here.
    if name == "relay_server":
        from .server import relay_server

        return relay_server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["main", "relay_server"]

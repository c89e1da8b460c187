"""The ``agent-relay`` command line."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agent-relay")
def main() -> None:
    """agent-relay: reach a local agent server through a relay it dials out to."""

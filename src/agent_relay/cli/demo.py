"""``agent-relay demo``: the relay, a sample agent server and a host on this machine."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import click

from .common import data_dir as make_data_dir
from .common import default_data_dir, fail_cleanly, run, setup_logging


@click.command()
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
@fail_cleanly
def demo(port: int, data_dir: Path | None, allow_unsigned: bool, verbose: bool) -> None:
    """Run the relay, a sample agent server and a connected host, all on this machine.

    The host checks signatures: pair a client with the printed code, then call through
    the relay with `agent-relay request`."""
    from ..demo.run import run_demo

    state = make_data_dir(data_dir, default=default_data_dir() / "demo")
    setup_logging(verbose)
    try:
        with _only_demo_in(state, given=data_dir is not None):
            run(run_demo(state, port=port, allow_unsigned=allow_unsigned))
    except OSError as exc:
        raise click.ClickException(
            f"cannot start the demo: {exc} (is port {port} in use? try --port 0)"
        ) from None


@contextlib.contextmanager
def _only_demo_in(state: Path, *, given: bool) -> Iterator[None]:
    """Two demos on one state dir would overwrite each other's pairing code: the second
    one is refused while the first runs (the lock goes with the process)."""
    with (state / "demo.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            hint = "" if given else "; or give this one its own --data-dir DIR"
            raise click.ClickException(
                f"another demo is running with {state}: stop it first{hint}"
            ) from None
        yield

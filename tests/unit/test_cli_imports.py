"""``agent-relay host`` runs in every connector process: what it imports stays small (the
relay, its store and the database drivers are loaded only by the commands that use them)."""

from __future__ import annotations

import subprocess
import sys

from agent_relay.cli import common
from agent_relay.relay import auth

# What `agent-relay host` imports when it runs (the cli package loads verb groups lazily).
_HOST_MODULES = [
    "agent_relay.cli",
    "agent_relay.cli.host",
    "agent_relay.host.assembly",
    "agent_relay.host.connector",
    "agent_relay.host.forward",
    "agent_relay.host.identity",
    "agent_relay.host.service",
    "agent_relay.tokens",
    "agent_relay.host.upstream",
    "agent_relay.trust.host",
]


def _printed_by(code: str) -> list[str]:
    """The words ``code`` prints, run in a fresh interpreter (its own sys.modules)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_the_host_command_does_not_load_the_relay_or_the_database_drivers() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {_HOST_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m.split('.')[0] in ('sqlalchemy', 'aiosqlite', 'asyncpg')\n"
        "               or m.startswith(('agent_relay.relay', 'agent_relay.store')))\n"
        "print(' '.join(heavy))\n"
    )
    assert _printed_by(code) == []


def test_the_secret_variable_named_in_the_help_is_the_relays() -> None:
    assert common.SECRET_ENV == auth.SECRET_ENV


def test_the_host_command_loads_pairing_qr_and_platform_dirs_only_on_use() -> None:
    """Idle connector memory (issue 14): SPAKE2 is needed while pairing, segno to draw a
    QR code, platformdirs when no --data-dir is given; none at start-up."""
    code = (
        "import importlib, sys\n"
        f"for name in {_HOST_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted(m for m in ('spake2', 'segno', 'platformdirs') "
        "if m in sys.modules)))\n"
    )
    assert _printed_by(code) == []


def test_the_relay_on_sqlite_loads_no_postgresql_driver_and_no_sqlalchemy() -> None:
    """The sidecar's 128 MiB: the store is its own thin layer over the drivers, and a relay
    on SQLite never loads asyncpg."""
    code = (
        "import asyncio, sys, tempfile\n"
        "from agent_relay.relay.service import RelayService\n"
        "from agent_relay.store import Store\n"
        "async def main():\n"
        "    with tempfile.TemporaryDirectory() as d:\n"
        "        store = await Store.open(d + '/relay.sqlite3')\n"
        "        await store.add_user('alice')\n"
        "        await store.close()\n"
        "asyncio.run(main())\n"
        "print(' '.join(sorted(m for m in sys.modules\n"
        "                      if m.split('.')[0] in ('sqlalchemy', 'greenlet', 'asyncpg'))))\n"
    )
    assert _printed_by(code) == []

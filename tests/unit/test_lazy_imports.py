"""Package ``__init__``s load their submodules on first use: a client that only signs
requests does not pay for (or depend on) the host's SQLite store and SPAKE2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    return set(json.loads(out.stdout))


def test_client_signing_loads_neither_the_host_store_nor_spake2() -> None:
    modules = loaded_after("import agent_relay.client.signing")
    assert "agent_relay.client.signing" in modules
    for heavy in ("sqlite3", "spake2", "agent_relay.trust.store", "agent_relay.trust.host"):
        assert heavy not in modules, heavy
    assert not {m for m in modules if m.startswith("agent_relay.host")}


@pytest.mark.parametrize("package", ["client", "trust", "host", "store"])
def test_every_lazy_export_resolves(package: str) -> None:
    modules = loaded_after(
        f"import agent_relay.{package} as p\nfor name in p.__all__: getattr(p, name)"
    )
    assert f"agent_relay.{package}" in modules


def test_the_connector_loads_sqlite_only_for_a_trust_store() -> None:
    # An unsigned connector (--allow-unsigned) never opens the trusted-clients store.
    modules = loaded_after("import agent_relay.host.assembly, agent_relay.host.forward")
    assert "sqlite3" not in modules

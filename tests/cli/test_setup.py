"""The demo's first run installs only what agent-relay runs on, and says so."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_runtime_setup_has_no_test_tools_and_shows_progress(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), "runtime"],
        env={**os.environ, "VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"installing the runtime dependencies into {venv} (first run only, about a minute)…"
    )
    python = str(venv / "bin" / "python")
    check = (
        "import importlib.util as u; "
        "print([m for m in ('pytest', 'mypy', 'ruff', 'hypothesis') if u.find_spec(m)])"
    )
    found = subprocess.run([python, "-c", check], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
    version = subprocess.run(
        [str(venv / "bin" / "agent-relay"), "--version"], capture_output=True, text=True, check=True
    )
    assert "agent-relay" in version.stdout
    # The runtime setup builds no extension: the pure-Python core, and it says so.
    assert "core: pure Python (extension not built)" in version.stdout
    # A second run has nothing to do, and says nothing.
    again = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), "runtime"],
        env={**os.environ, "VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0
    assert again.stderr == ""

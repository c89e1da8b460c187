"""The JS that ships in the Python package (src/agent_relay/web/static/) is exactly what
the pinned toolchain builds from clients/browser/src: rebuilt into a temporary directory
and compared byte for byte (esbuild's output is deterministic)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .node import BROWSER, STATIC, require_toolchain


def test_committed_bundle_matches_a_fresh_build(tmp_path: Path) -> None:
    node = require_toolchain()
    out = tmp_path / "static"
    subprocess.run([node, "build.mjs", str(out)], cwd=BROWSER, check=True, timeout=120)
    built = {p.name: p.read_bytes() for p in out.iterdir()}
    committed = {p.name: p.read_bytes() for p in STATIC.iterdir() if p.suffix in (".js", ".css")}
    assert "sdk.js" in built
    assert sorted(committed) == sorted(built), "static/ holds other bundles than the build makes"
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"{stale} differ from a fresh build: run scripts/browser.sh and commit"


def test_bundle_is_in_the_wheel_package_data() -> None:
    # pyproject.toml ships web/static/* inside the agent_relay package.
    pyproject = (BROWSER.parents[1] / "pyproject.toml").read_text()
    assert '"web/static/*"' in pyproject
    from agent_relay.web import STATIC_DIR

    assert (STATIC_DIR / "sdk.js").is_file()

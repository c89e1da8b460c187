"""Fixtures for the deployment files in deploy/: their paths, their YAML documents, and
the third-party schemas fetched (pinned) by scripts/deploy-schemas.sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.deploy import (
    ROOT,
)


@pytest.fixture(scope="session")
def schema_dir() -> Path:
    """Traefik's CRDs, fetched by scripts/deploy-schemas.sh (scripts/test.sh runs it
    first; run here too, so these tests also work alone)."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "deploy-schemas.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/deploy-schemas.sh failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])

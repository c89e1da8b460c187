"""Fixtures of the command-line tests: every output is checked for a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_runner import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path / "home")
    runner.home.mkdir()
    yield runner
    for output in runner.outputs:
        assert "Traceback" not in output, output

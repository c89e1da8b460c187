"""Process fixtures for the end-to-end tests (see stack.py): one stack shared by the
tests that only send traffic, a fresh one for each test that kills a process. When a test
fails, the logs of every process it was using are added to its report."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from .stack import FIGURES, LIVE, Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Shared by a module's tests: they must leave every process running."""
    with running_stack(tmp_path_factory.mktemp("e2e")) as running:
        yield running
        for process in running.processes():
            assert process.running, f"a test left {process.name} stopped"
    # Stopped in order (connector, sample server, relay), each on SIGTERM alone.
    # (uvicorn ends the sample server by raising the signal again after its clean stop.)
    clean = {"connector": {0}, "relay": {0}, "sample-server": {0, -signal.SIGTERM}}
    for process in running.processes():
        assert not process.killed_after_sigterm, f"{process.name} ignored SIGTERM"
        assert process.exit_code in clean[process.name], f"{process.name}: {process.exit_code}"


@pytest.fixture
def fresh_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own, for a test that stops or kills parts of it."""
    with running_stack(tmp_path_factory.mktemp("e2e")) as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if report.failed:
        for process in LIVE:
            report.sections.append((f"process {process.name}", process.logs()))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("end-to-end figures")
        for figure in FIGURES:
            terminalreporter.write_line(figure)

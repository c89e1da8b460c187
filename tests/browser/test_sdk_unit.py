"""The browser SDK's unit tests (clients/browser/test/*.test.mjs, Node's runner) against
the committed bundle and the vectors the Python implementation made (tests/vectors)."""

from __future__ import annotations

from .node import BROWSER, node_test

# The Node files hold at least this many tests; fewer means some were lost, not passed.
MIN_TESTS = 20


def test_sdk_node_unit_tests_pass() -> None:
    files = sorted(str(p.relative_to(BROWSER)) for p in (BROWSER / "test").glob("*.test.mjs"))
    run = node_test(*files)
    print(f"node --test: {run.passed} passed, {run.failed} failed")
    assert run.returncode == 0, run.output[-8000:]
    assert run.failed == 0, run.output[-8000:]
    assert run.passed >= MIN_TESTS, run.output[-8000:]

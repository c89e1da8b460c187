"""Issue 11 item 10 (browser SDK): an unsigned clock correction is capped at 30 s, as in
the Python client (tests/security/test_client_clock.py). The check itself runs in Node
against the committed bundle: clients/browser/test/security-clock.mjs."""

from __future__ import annotations

from ..browser.node import node_test


def test_browser_sdk_caps_an_unsigned_clock_correction() -> None:
    run = node_test("test/security-clock.mjs")
    assert run.returncode == 0, run.output[-4000:]
    assert run.passed == 1, run.output[-4000:]
    assert run.failed == 0, run.output[-4000:]

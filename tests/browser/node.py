"""Running the browser SDK's Node tests from pytest (so scripts/test.sh and CI count
them). Needs scripts/browser.sh (scripts/test.sh runs it: the pinned npm packages)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROWSER = ROOT / "clients" / "browser"
STATIC = ROOT / "src" / "agent_relay" / "web" / "static"


def require_toolchain() -> str:
    node = shutil.which("node")
    assert node, "node is not installed (scripts/test.sh needs Node >= 20)"
    assert (BROWSER / "node_modules" / "esbuild").is_dir(), (
        "the browser toolchain is not installed: run scripts/browser.sh install"
    )
    return node


@dataclass(frozen=True)
class NodeRun:
    returncode: int
    output: str
    passed: int
    failed: int


def node_test(*files: str, env: dict[str, str] | None = None, timeout: float = 240) -> NodeRun:
    """``node --test`` (TAP output) in clients/browser; the counts it reported."""
    node = require_toolchain()
    done = subprocess.run(
        [node, "--test", "--test-reporter=tap", *files],
        cwd=BROWSER,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    output = done.stdout + done.stderr
    passed = re.search(r"^# pass (\d+)", output, re.M)
    failed = re.search(r"^# fail (\d+)", output, re.M)
    return NodeRun(
        done.returncode,
        output,
        int(passed.group(1)) if passed else 0,
        int(failed.group(1)) if failed else -1,
    )

"""The remote web UI and the host's local page in real headless Chromium, against the
real demo processes and a hostile relay (tests/integration/hostile.py) in front of the
same relay. remote_ui.mjs drives the browser (playwright-core from clients/browser,
Debian's chromium: scripts/chromium.sh); this wrapper runs the processes and checks what
it reports. Screenshots of every screen land in test-output/screens/."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_demo import printed_line, running_demo
from tests.support.hostile import Answer, Recorded, hostile_relay

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients" / "browser"
SCREENS = ROOT / "test-output" / "screens"
ORIGINAL, TAMPERED = b"homelab", b"Homelab"  # one byte apart


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is missing: bash scripts/chromium.sh"
    assert (CLIENTS / "node_modules" / "playwright-core").is_dir(), "run: bash scripts/browser.sh"
    return found


def flip_one_byte(recorded: Recorded, answer: Answer) -> Answer:
    """The hostile relay's change: one byte of the host's list of workspaces."""
    path = recorded.target.partition("?")[0]
    if path.endswith("/api/workspaces") and ORIGINAL in answer.body:
        at = answer.body.index(ORIGINAL)
        body = answer.body[:at] + TAMPERED[:1] + answer.body[at + 1 :]
        return Answer(answer.status, answer.headers, body)
    return answer


async def drive(config: dict[str, str]) -> dict[str, Any]:
    """Run remote_ui.mjs; its last line is a JSON summary (with ``error`` on failure)."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(Path(__file__).with_name("remote_ui.mjs")),
        json.dumps(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_OPTIONS": ""},
    )
    async with asyncio.timeout(240):
        out, err = await process.communicate()
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()
    summary: dict[str, Any] = json.loads(lines[-1])
    assert process.returncode == 0, summary.get("error") or err.decode()
    for screen, violations in summary["axe"].items():
        assert violations == [], (screen, violations)
    return summary


async def test_host_page_in_chromium(tmp_path: Path) -> None:
    browser = chromium()
    async with running_demo(tmp_path) as banner:
        summary = await drive(
            {
                "mode": "host-page",
                "clientsDir": str(CLIENTS),
                "chromium": browser,
                "outDir": str(SCREENS),
                "relay": printed_line(banner, r"^http://\S+/#token=").partition("/#")[0],
                "hostId": printed_line(banner, r"^host id:").split()[-1],
                "hostPage": printed_line(banner, r"^http://\S+/_relay/$"),
            }
        )
    assert len(summary["screens"]) == 2 * 2


async def test_a_hosts_page_through_the_relay_runs_sandboxed(tmp_path: Path) -> None:
    """Security issue item 1 in a real browser: a host's HTML, opened from the relay's
    origin, gets an opaque origin: no storage (where the UI keeps its token), no cookies."""
    browser = chromium()
    async with running_demo(tmp_path, "--allow-unsigned") as banner:
        browse = printed_line(banner, r"^http://\S+/v1/relay/h/")
        summary = await drive(
            {
                "mode": "sandbox",
                "clientsDir": str(CLIENTS),
                "chromium": browser,
                "outDir": str(SCREENS),
                "relay": browse.partition("/v1/")[0],
                "hostHtml": browse,
            }
        )
    assert summary["sandbox"]["origin"] == "null"


@pytest.mark.parametrize("size", ["desktop", "phone"])  # 1280x900, 390x844
async def test_remote_ui_in_chromium(tmp_path: Path, size: str) -> None:
    browser = chromium()
    async with running_demo(tmp_path) as banner:
        sign_in = printed_line(banner, r"^http://\S+/#token=")
        relay = sign_in.partition("/#")[0]
        token = shlex.split(printed_line(banner, r"export AGENT_RELAY_TOKEN=").partition("=")[2])[0]
        host_id = printed_line(banner, r"^host id:").split()[-1]
        async with hostile_relay(relay) as hostile:
            hostile.on_answer = flip_one_byte
            summary = await drive(
                {
                    "mode": "full",
                    "size": size,
                    "clientsDir": str(CLIENTS),
                    "chromium": browser,
                    "outDir": str(SCREENS),
                    "relay": relay,
                    "signInLink": sign_in,
                    "token": token,
                    "hostId": host_id,
                    "hostPage": printed_line(banner, r"^http://\S+/_relay/$"),
                    "hostile": hostile.url,
                    "tampered": TAMPERED.decode(),
                }
            )
    assert len(summary["screens"]) == 8
    assert summary["revokeMs"][size] < 1000, summary["revokeMs"]
    assert summary["clearedMs"][size] < 1000, summary["clearedMs"]

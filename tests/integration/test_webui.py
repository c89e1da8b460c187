"""The remote web UI as the relay serves it (files, headers, CSP), and the links into it:
``tokens issue --link`` and the host page's pair link."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_relay.web import STATIC_DIR
from agent_relay.web.links import LinkError, pair_link, sign_in_link, ui_base
from tests.support.relay import Relay, running_relay


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with running_relay(f"sqlite:///{tmp_path / 'relay.sqlite3'}") as running:
        yield running


async def test_the_page_and_its_bundle_are_served_with_a_strict_policy(relay: Relay) -> None:
    page = await relay.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text == (STATIC_DIR / "index.html").read_text()
    assert '<meta name="viewport"' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "http" not in policy  # no other origin of any kind
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    script = await relay.client.get("/ui/remote.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await relay.client.get("/ui/remote.css")).headers["content-type"].startswith("text/css")
    again = await relay.client.get("/", headers={"if-none-match": page.headers["etag"]})
    assert again.status_code == 304


async def test_no_external_resources_in_the_page_or_the_bundle() -> None:
    for name in ("index.html", "remote.js", "remote.css"):
        text = (STATIC_DIR / name).read_text()
        for marker in ("https://", "http://", "//fonts.", "@import", "cdn"):
            # URLs in comments of bundled libraries are fine; loading one is not.
            for line in text.splitlines():
                if marker in line and ("src=" in line or "href=" in line or "url(" in line):
                    raise AssertionError(f"{name} loads from elsewhere: {line.strip()}")


async def test_unknown_files_and_methods_are_clean_json_errors(relay: Relay) -> None:
    missing = await relay.client.get("/ui/../../pyproject.toml")
    assert missing.status_code == 404
    assert "error" in missing.json()
    assert (await relay.client.get("/ui/nothing.js")).status_code == 404
    posted = await relay.client.post("/", content=b"x")
    assert posted.status_code == 405
    assert (await relay.client.get("/v1/none")).json() == {"error": "no such route"}


async def test_no_web_ui_on_an_origin_without_the_sandbox(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    async with running_relay(url, host_content_sandbox=False) as relay:
        assert (await relay.client.get("/")).status_code == 404


def test_links_carry_their_secret_in_the_fragment() -> None:
    assert ui_base("wss://relay.example/v1/relay/connect") == "https://relay.example/"
    assert ui_base("http://127.0.0.1:8082") == "http://127.0.0.1:8082/"
    assert ui_base("https://example.org/relay/") == "https://example.org/relay/"
    assert sign_in_link("https://r.example", "a.b+c/d") == "https://r.example/#token=a.b%2Bc%2Fd"
    assert pair_link("http://r:1/", "h-1", "ABC234") == "http://r:1/#pair=h-1&code=ABC234"
    for bad in ("relay.example", "ftp://x", "http://"):
        with pytest.raises(LinkError):
            ui_base(bad)


async def _cli(*args: str, data_dir: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_relay.cli",
        *args,
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_tokens_issue_link_prints_a_sign_in_link_and_a_qr_code(tmp_path: Path) -> None:
    data = tmp_path / "relay"
    assert (await _cli("users", "add", "alice", data_dir=data))[0] == 0
    code, out, err = await _cli(
        "tokens", "issue", "alice", "--link", "https://relay.example", data_dir=data
    )
    assert code == 0, err
    token, link, *qr = out.splitlines()
    assert link == f"https://relay.example/#token={token}"
    assert sum("█" in line or "▀" in line for line in qr) > 10  # a QR code, drawn in blocks
    code, out, err = await _cli("tokens", "issue", "alice", "--link", "relay", data_dir=data)
    assert code != 0
    assert out == ""  # no token made for a link that cannot work
    assert "http(s)://" in err
    assert "Traceback" not in err

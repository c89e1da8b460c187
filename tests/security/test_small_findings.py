"""Issue 11 item 10 (the relay's parts): the database file is private, and an HTTP/1.0
request without Host is a client error, not a crash."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from agent_relay.store import Store

from ..integration.test_relay import running_relay


async def test_http10_request_without_host_is_400_not_500(sqlite_url: str) -> None:
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        base = await relay.path()
        port = relay.service.address[1] if relay.service.address else 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {base}/echo HTTP/1.0\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert b"Host header" in answer
        await host.close()


async def test_database_files_are_0600_even_in_an_existing_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        store = await Store.open(None, data_dir=data_dir)
        user = await store.add_user("alice")  # a write: the -wal file exists now
        assert user
        files = [p for p in data_dir.iterdir() if p.name.startswith("relay.sqlite3")]
        assert any(p.name.endswith("-wal") for p in files), files
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path.name, oct(path.stat().st_mode))
        await store.close()
    finally:
        os.umask(old)


async def test_session_ids_stay_out_of_log_lines(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_relay(sqlite_url) as relay:
        host = await relay.host()
        base = await relay.path()
        session_id = base.rsplit("/", 1)[1]

        async def broken(session: object) -> object:
            raise RuntimeError("an unexpected fault")  # the path of a 500 is logged

        monkeypatch.setattr(relay.store, "load_proxy_context", broken)
        relay.service.app.forget_all_sessions()
        with caplog.at_level(logging.DEBUG):
            assert (await relay.client.get(f"{base}/echo?x=1")).status_code == 500
            assert (await relay.client.get(f"{base}/echo")).status_code == 500
        ours = "\n".join(
            f"{r.getMessage()} {r.exc_text or ''}"
            for r in caplog.records
            if r.name.startswith("agent_relay")
        )
        assert "unexpected error" in ours
        assert session_id not in ours
        await host.close()

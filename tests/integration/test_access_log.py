"""The relay's access log (one line per proxied exchange, no session id, no query) and
/metrics moved off the public port."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from tests.support.relay import running_relay


async def test_one_access_line_per_exchange_without_secrets(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent_relay.access")
    async with running_relay(sqlite_url, access_log=True) as relay:
        host = await relay.host()
        path = await relay.path()
        session_id = path.rsplit("/", 1)[1]
        answer = await relay.client.post(f"{path}/echo?token=s3cret", content=b"12345")
        assert answer.status_code == 200
        unknown = f"{path[: -len(session_id)]}{uuid.uuid4()}/echo"
        assert (await relay.client.get(unknown)).status_code == 401
        await host.close()
    lines = [r for r in caplog.records if r.name == "agent_relay.access"]
    assert len(lines) == 1  # the refused one never reached a host
    record = lines[0]
    fields = record.access  # type: ignore[attr-defined]
    assert fields["method"] == "POST"
    assert fields["path"] == "/echo"
    assert fields["status"] == 200
    assert fields["bytes_up"] >= 5
    assert fields["bytes_down"] >= 5
    assert fields["host_id"] == path.split("/")[4]
    text = record.getMessage()
    assert text.startswith(f"POST host={fields['host_id']} /echo 200 up=")
    assert session_id not in text
    assert "s3cret" not in text


async def test_metrics_on_their_own_listener(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, metrics_listen=("127.0.0.1", 0)) as relay:
        assert (await relay.client.get("/metrics")).status_code == 404
        assert relay.service.metrics_address is not None
        host, port = relay.service.metrics_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as metrics:
            served = await metrics.get("/metrics")
            assert served.status_code == 200
            assert "relay" in served.text
            assert (await metrics.get("/v1/hosts")).status_code == 404

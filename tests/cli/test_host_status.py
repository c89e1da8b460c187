"""`agent-relay host status` reads the running connector's status from its data dir; the
connector warns at start when its local server is down."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path

from tests.support.cli import start_host
from tests.support.cli_runner import Cli, one_line_error
from tests.support.relay import Relay


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_host_status_and_a_down_upstream(cli: Cli, relay: Relay, tmp_path: Path) -> None:
    data_dir = tmp_path / "host"
    nothing = f"http://127.0.0.1:{_free_port()}"  # no local server there
    host = await start_host(
        "--relay", relay.url, "--upstream", nothing, "--token", relay.token,
        "--data-dir", str(data_dir), env={},
    )  # fmt: skip
    try:
        warning = await host.wait_for_line(r"the local server .* is not answering")
        assert warning.string.endswith(
            f"the local server {nothing} is not answering (connection refused): relayed "
            "requests get 502 with that reason until it is up"
        )
        await host.wait_for_line(r"connected to ws://")
        for _ in range(300):  # the status file is rewritten every second
            done = await asyncio.to_thread(cli, "host", "status", "--data-dir", str(data_dir))
            if done.returncode == 0:
                break
            await asyncio.sleep(0.1)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0].startswith(f"connected to ws://{relay.url[7:]}")
        assert f"local server: {nothing}" in done.stdout
        whole = await asyncio.to_thread(
            cli, "host", "status", "--json", "--data-dir", str(data_dir)
        )
        document = json.loads(whole.stdout)
        assert document["connected"] is True
        assert document["host_id"] == str(await relay.host_id(document["machine_id"]))
        assert "enrollment_code" not in document["trust"]
    finally:
        host.process.send_signal(signal.SIGTERM)
        assert await host.wait(30) == 0
    gone = await asyncio.to_thread(cli, "host", "status", "--data-dir", str(data_dir))
    assert one_line_error(gone) == (
        f"no connector is running with the data dir {data_dir} (start one with "
        "`agent-relay host`, or give its --data-dir)"
    )

"""What used to end in a traceback ends in one line that says what is wrong, naming what
the user typed, with exit status 1."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_runner import Cli, one_line_error


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_server_on_a_busy_port(cli: Cli, busy_port: int) -> None:
    done = cli("server", "--listen", f"127.0.0.1:{busy_port}")
    assert one_line_error(done) == (
        f"cannot listen on 127.0.0.1:{busy_port} (--listen): address already in use"
    )


def test_server_data_dir_that_cannot_be_created(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-file" / "sub"
    done = cli("server", "--listen", "127.0.0.1:0", "--data-dir", str(target))
    assert one_line_error(done) == f"cannot create --data-dir {target}: not a directory"


def test_server_bad_listen_names_the_flag(cli: Cli) -> None:
    done = cli("server", "--listen", "localhost")
    assert one_line_error(done) == "--listen must be HOST:PORT, got 'localhost'"


def test_server_on_port_0_starts_and_says_its_port(cli: Cli, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_relay.cli",
            "server",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cli.home)},
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if "relay listening on" in line or not line:
                break
        assert "relay listening on 127.0.0.1:" in line, line
        port = int(line.split("relay listening on 127.0.0.1:")[1].split()[0])
        assert port > 0
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Traceback" not in rest


def test_host_status_listen_on_a_busy_port(cli: Cli, busy_port: int) -> None:
    done = cli(
        "host",
        "--relay", "http://127.0.0.1:9",
        "--upstream", "http://127.0.0.1:9",
        "--token", "x.y.z",
        "--status-listen", f"127.0.0.1:{busy_port}",
    )  # fmt: skip
    assert one_line_error(done) == (
        f"cannot listen on 127.0.0.1:{busy_port} (--status-listen): address already in use"
    )


def test_request_output_into_a_missing_directory(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.bin"
    done = cli("request", "/api/x", "-o", str(target))
    assert one_line_error(done) == (
        f"cannot write -o {target}: no directory {target.parent} (create it first)"
    )


def test_a_second_demo_on_the_same_state_is_refused(cli: Cli) -> None:
    import fcntl

    state = cli.home / "data" / "demo"
    state.mkdir(parents=True)
    with (state / "demo.lock").open("a") as held:  # as a running demo holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = cli("demo", "--port", "0")
    assert one_line_error(done) == (
        f"another demo is running with {state}: stop it first; "
        "or give this one its own --data-dir DIR"
    )


def test_relay_server_has_a_version(cli: Cli) -> None:
    import agent_relay

    done = subprocess.run(
        [sys.executable, "-c", "from agent_relay.cli import relay_server; relay_server()",
         "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(agent_relay.__version__)
    assert "relay-server" in done.stdout


def test_a_garbage_token_is_refused_not_ignored(cli: Cli) -> None:
    done = cli("request", "--token", "garbage", "/api/x")
    assert one_line_error(done) == (
        "--token is not a relay token (a JWT: three dot-separated base64url parts, as "
        "`agent-relay tokens issue` prints)"
    )


def test_a_pairing_code_for_a_data_dir_no_connector_uses_warns(cli: Cli, tmp_path: Path) -> None:
    unused = tmp_path / "nobody"
    done = cli("host", "pair-code", "--data-dir", str(unused))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"warning: no connector has run with the data dir {unused}; a connector reads the "
        "code from its own data dir (give this command the same --data-dir)"
    )
    assert len(done.stdout.strip()) == 6
    (unused / "machine-id").write_text("m\n")
    stopped = cli("host", "pair-code", "--data-dir", str(unused))
    assert "warning" not in stopped.stderr
    assert stopped.stderr.splitlines()[0] == (
        f"note: no connector is running with the data dir {unused} now; the code works "
        "once one starts with it (within 10 min)"
    )
    (unused / "status.json").write_text("{}")  # as a running connector keeps it
    quiet = cli("host", "pair-code", "--data-dir", str(unused))
    assert quiet.stderr.splitlines() == ["valid for 10 min, for one pairing attempt"]

"""A TOML config file for the relay and the connector: a flag (or its environment
variable) wins over the file, an unknown setting is named; JSON logs and /metrics on
their own port, set from the file."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_runner import Cli, one_line_error, usage_error


@pytest.fixture
def busy_ports() -> Iterator[tuple[int, int]]:
    with socket.socket() as one, socket.socket() as two:
        for taken in (one, two):
            taken.bind(("127.0.0.1", 0))
            taken.listen()
        yield one.getsockname()[1], two.getsockname()[1]


def test_an_unknown_setting_is_named(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('listen = "127.0.0.1:0"\nlisten_adress = "x"\n')
    message = usage_error(cli("server", "--config", str(config)))
    assert message.startswith(
        f"Invalid value for '--config': {config}: unknown setting 'listen_adress' (settings: "
    )
    assert "listen, " in message


def test_bad_toml_is_one_line(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("listen = \n")
    assert usage_error(cli("server", "--config", str(config))).startswith(
        f"Invalid value for '--config': {config} is not valid TOML: "
    )


def test_the_file_applies_and_a_flag_wins(
    cli: Cli, tmp_path: Path, busy_ports: tuple[int, int]
) -> None:
    in_file, on_flag = busy_ports
    config = tmp_path / "relay.toml"
    config.write_text(f'listen = "127.0.0.1:{in_file}"\ndata-dir = "{tmp_path / "d"}"\n')
    from_file = cli("server", "--config", str(config))
    assert one_line_error(from_file) == (
        f"cannot listen on 127.0.0.1:{in_file} (--listen): address already in use"
    )
    flag = cli("server", "--config", str(config), "--listen", f"127.0.0.1:{on_flag}")
    assert one_line_error(flag) == (
        f"cannot listen on 127.0.0.1:{on_flag} (--listen): address already in use"
    )


def test_a_busy_metrics_port_names_its_flag(
    cli: Cli, tmp_path: Path, busy_ports: tuple[int, int]
) -> None:
    busy, _ = busy_ports
    done = cli(
        "server", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
        "--metrics-listen", f"127.0.0.1:{busy}",
    )  # fmt: skip
    assert one_line_error(done) == (
        f"cannot listen on 127.0.0.1:{busy} (--metrics-listen): address already in use"
    )


def test_json_logs_and_metrics_listen_from_the_file(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        'listen = "127.0.0.1:0"\n'
        'metrics-listen = "127.0.0.1:0"\n'
        'log-format = "json"\n'
        "access-log = true\n"
        f'data-dir = "{tmp_path / "d"}"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_relay.cli", "server", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cli.home)},
    )
    try:
        assert process.stderr is not None
        entries: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            str(e["message"]).startswith("metrics: ") for e in entries
        ):
            line = process.stderr.readline()
            assert line, entries
            entries.append(json.loads(line))  # every line is one JSON object
        listening = next(e for e in entries if "relay listening on" in str(e["message"]))
        assert listening["level"] == "info"
        assert listening["logger"] == "agent_relay.relay.service"
        metrics_url = str(entries[-1]["message"]).removeprefix("metrics: ")
        public = str(listening["message"]).split("relay listening on ")[1].split()[0]
        with urllib.request.urlopen(metrics_url, timeout=10) as served:  # noqa: S310
            assert served.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{public}/metrics", timeout=10)
        assert refused.value.code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    cli.outputs.append(rest)
    assert process.returncode == 0
    for line in rest.splitlines():
        json.loads(line)


def test_the_connector_reads_a_file_too(
    cli: Cli, tmp_path: Path, busy_ports: tuple[int, int]
) -> None:
    busy, _ = busy_ports
    config = tmp_path / "host.toml"
    config.write_text(
        'relay = "http://127.0.0.1:9"\nupstream = "http://127.0.0.1:9"\ntoken = "x.y.z"\n'
        f'status-listen = "127.0.0.1:{busy}"\nstun = ["stun.example:3478"]\n'
    )
    done = cli("host", "--config", str(config))
    assert one_line_error(done) == (
        f"cannot listen on 127.0.0.1:{busy} (--status-listen): address already in use"
    )


@pytest.mark.parametrize(("command", "example"), [("server", "relay.toml"), ("host", "host.toml")])
def test_the_example_files_hold_only_known_settings(cli: Cli, command: str, example: str) -> None:
    path = Path(__file__).parents[2] / "deploy" / "systemd" / example
    done = cli(command, "--config", str(path), "--help")  # the file is read before --help
    assert done.returncode == 0, done.stderr


def test_shell_completion_as_documented() -> None:
    """docs/cli.md: click's completion, through the lazily loaded verb groups."""
    import os

    env = {**os.environ, "COMP_WORDS": "agent-relay host st", "COMP_CWORD": "2",
           "_AGENT_RELAY_COMPLETE": "bash_complete"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'agent-relay'; "
         "from agent_relay.cli import main; main(prog_name='agent-relay')"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.split() == ["plain,status"], done.stderr


def test_host_subcommands_take_the_files_data_dir(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "connector-state"
    config = tmp_path / "host.toml"
    config.write_text(f'data-dir = "{state}"\n')
    done = cli("host", "--config", str(config), "status")
    assert one_line_error(done) == (
        f"no connector is running with the data dir {state} (start one with "
        "`agent-relay host`, or give its --data-dir)"
    )
    listed = cli("host", "--config", str(config), "clients", "list")
    assert listed.returncode == 0, listed.stderr
    assert state.is_dir()  # the paired-clients store was opened there

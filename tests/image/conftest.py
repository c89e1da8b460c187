"""The image built from deploy/Dockerfile by scripts/image.sh (podman, a stand-in base
from Debian's packages), opened as a root filesystem: ``podman create`` + ``podman mount``.
Containers cannot be started with ``podman run`` here, so the image's programs run with
``chroot --userspec`` in the mounted root, under the image's own user, environment and
working directory, in a private mount namespace (``unshare --mount``) where the root can
be made read-only with only the data dir writable."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_LABEL = "agent-relay.test.base"  # set by scripts/image.sh: the base it built on
BUILD_TIMEOUT = 900  # a cold build: debootstrap (about a minute) and the image (under one)


def podman(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout.strip()


SUMMARY: list[str] = []  # lines for the end of the test run (the image's size)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)


@dataclass(frozen=True)
class Image:
    name: str
    base: str
    config: dict[str, Any]  # the image's Config: User, Env, Cmd, WorkingDir
    healthcheck: dict[str, Any]  # Test, Interval, ...
    size: int
    base_size: int

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config["Env"])


@pytest.fixture(scope="session")
def image() -> Image:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "image.sh")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/image.sh failed:\n{result.stderr[-6000:]}")
    name = result.stdout.strip().splitlines()[-1]
    (inspected,) = json.loads(podman("image", "inspect", name))
    base_name = inspected["Config"]["Labels"][BASE_LABEL]
    (base,) = json.loads(podman("image", "inspect", base_name))
    return Image(
        name,
        base_name,
        inspected["Config"],
        inspected.get("Healthcheck") or {},
        inspected["Size"],
        base["Size"],
    )


@dataclass(frozen=True)
class Rootfs:
    """The image's root filesystem, mounted."""

    image: Image
    path: Path

    def command(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        read_only: bool = False,
        data_dir: Path | None = None,
    ) -> list[str]:
        """``argv`` as the image runs it: its user, environment (plus ``env``) and working
        directory. ``read_only``: the root filesystem read-only, ``/tmp`` a tmpfs and
        ``data_dir`` (a host directory) mounted writable on ``/data``."""
        user = self.image.config["User"]
        workdir = self.image.config.get("WorkingDir") or "/"
        environment = {**self.image.env, **(env or {})}
        root = shlex.quote(str(self.path))
        steps = ["set -e"]
        if read_only:
            steps += [
                f"mount --bind {root} {root}",
                f"mount -o remount,bind,ro {root}",
                f"mount -t tmpfs -o mode=1777 tmpfs {root}/tmp",  # noqa: S108 (in the image)
            ]
            if data_dir is not None:
                steps.append(f"mount --bind {shlex.quote(str(data_dir))} {root}/data")
        steps += [
            f"mount --bind /dev {root}/dev",
            f"mount -t proc proc {root}/proc",
            "exec chroot --userspec="
            + shlex.quote(user)
            + f" {root} /usr/bin/env -i "
            + " ".join(shlex.quote(f"{k}={v}") for k, v in environment.items())
            + " /bin/sh -c "
            + shlex.quote(f'cd {shlex.quote(workdir)} && exec "$@"')
            + " - "
            + " ".join(shlex.quote(word) for word in argv),
        ]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(steps)]

    def run(self, argv: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        timeout = options.pop("timeout", 60)
        return subprocess.run(
            self.command(argv, **options),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="session")
def rootfs(image: Image) -> Iterator[Rootfs]:
    container = podman("create", image.name, "true")
    try:
        yield Rootfs(image, Path(podman("mount", container)))
    finally:
        subprocess.run(["podman", "umount", container], capture_output=True, check=False)
        subprocess.run(["podman", "rm", "-f", container], capture_output=True, check=False)
